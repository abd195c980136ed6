// Package demo is what `amrctl dev` does with a running stack (cmd/amrctl/internal/devstack):
// export the sample plans into an SQLite inventory through the inventory sink, validate a
// simulated destination with seeded differences against it, change the tenant and export it
// again incrementally, and check the incremental change set and the validation's findings
// against the simulator's own account of what it changed and seeded. The command only wires it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/downstream/changes"
	"github.com/amrpipe/amrpipe/pkg/downstream/inventorysink"
	"github.com/amrpipe/amrpipe/pkg/downstream/sink"
	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/runreport"
	"github.com/amrpipe/amrpipe/pkg/validate"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Files and directories the demo writes under Options.Out.
const (
	InventoryFile = "inventory.db"
	ChangesFile   = "changes.csv"
	RecordsFile   = "records.jsonl"
	ValidationDir = "validation"
	RunReportDir  = "run-report"
)

// Options configures a demo run.
type Options struct {
	// Out is the directory the inventory and the reports are written to; what an earlier run
	// wrote there is replaced.
	Out string
	// Plans are the source tenant's plans (full reads).
	Plans []*amrpipev1.PlanRequest
	// Validate also exports the stack's destination tenant (devstack.Options.Destination) with
	// Plans moved to its sites, and validates it against the source.
	Validate bool
	// Changes, when positive, makes the simulator change the tenant that many times after the
	// full pass, then runs Plans again incrementally and checks the change set.
	Changes int
	// JSONL also writes every record to RecordsFile (protojson lines).
	JSONL bool
	// Watch waits until the pipeline is idle, showing the progress of the jobs of the plans
	// given (the pass's); nil waits without showing any.
	Watch func(ctx context.Context, planIDs []string) error
	// MtimeTolerance of the validation (default 2 s).
	MtimeTolerance time.Duration
}

// Result is what a demo run did.
type Result struct {
	// Records are the records ingested into the inventory over every pass (a batch delivered
	// twice counts twice); Passes how many passes.
	Records, Passes int64
	// Jobs are the AMR jobs of every pass by state.
	Jobs       map[string]int
	JobsFailed int
	// ChangeSet counts the incremental change sets' entries by kind; SimulatorChanges is how
	// many changes the simulator made under the plans' targets; ChangesMismatch is empty when
	// the change sets are exactly the simulator's changes.
	ChangeSet        map[inventory.ChangeKind]int
	SimulatorChanges int
	ChangesMismatch  string
	// Validation is the validation's result; Seeded the destination's seeded differences;
	// FindingsMismatch is empty when the failures are exactly the seeded differences.
	Validation       *validate.Result
	Seeded           int
	FindingsMismatch string
	// Paths written.
	Inventory, ChangesCSV, RecordsJSONL string
	ValidationReports, RunReports       []string
}

// OK reports whether the change set and the findings are the simulator's and no job failed.
func (r *Result) OK() bool {
	return r.ChangesMismatch == "" && r.FindingsMismatch == "" && r.JobsFailed == 0
}

// Run runs the demo on st, printing what it does to w.
func Run(ctx context.Context, st *devstack.Stack, o Options, w io.Writer) (_ *Result, err error) {
	if o.Validate && st.DestTenant == nil {
		return nil, errors.New("demo: validation needs a stack with a destination tenant (devstack.Options.Destination)")
	}
	if o.Watch == nil {
		o.Watch = func(ctx context.Context, _ []string) error { return st.WaitIdle(ctx) }
	}
	if o.MtimeTolerance == 0 {
		o.MtimeTolerance = 2 * time.Second
	}
	res := &Result{Inventory: filepath.Join(o.Out, InventoryFile), Jobs: map[string]int{}}
	if err := fresh(o.Out); err != nil {
		return nil, err
	}
	store, err := inventory.Open(ctx, "sqlite:"+res.Inventory)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	nc, js, err := st.Connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()

	rt := newRouter(st.Store.Job)
	sk := inventorysink.New(rt, inventorysink.Options{})
	sinkCtx, stopSink := context.WithCancel(ctx)
	sinkDone := make(chan error, 1)
	// The sink's goroutines carry a profiler label as the stages' do, so a CPU profile of the
	// demo says what the inventory cost.
	go pprof.Do(sinkCtx, pprof.Labels("stage", inventorysink.Stage), func(ctx context.Context) {
		sinkDone <- sk.Run(ctx, &inventorysink.JetStreamSource{JS: js})
	})
	defer func() {
		stopSink()
		if serr := <-sinkDone; serr != nil && !errors.Is(serr, context.Canceled) {
			err = errors.Join(err, fmt.Errorf("inventory sink: %w", serr))
		}
	}()
	var jl *jsonl
	if o.JSONL {
		res.RecordsJSONL = filepath.Join(o.Out, RecordsFile)
		if jl, err = startJSONL(ctx, st, res.RecordsJSONL); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, jl.stop()) }()
	}

	// The full pass, and the destination's export beside it.
	plans := clonePlans(o.Plans, "", st.SiteURL, false)
	var destPlans []*amrpipev1.PlanRequest
	if o.Validate {
		destPlans = destinationPlans(st, o.Plans)
		fmt.Fprintf(w, "full pass of the source (%d plans) and export of the destination %s (%d plans, seeded differences) into %s\n\n",
			len(plans), st.DestURL, len(destPlans), res.Inventory)
	} else {
		fmt.Fprintf(w, "full pass of the source (%d plans) into %s\n\n", len(plans), res.Inventory)
	}
	if _, err := runPasses(ctx, st, store, rt, js, o, inventory.Full, append(plans, destPlans...), res, w); err != nil {
		return nil, err
	}
	if o.Validate {
		if err := validateDestination(ctx, st, store, o, res, w); err != nil {
			return nil, err
		}
	}
	reported := append(plans, destPlans...)
	if o.Changes > 0 {
		second, err := secondPass(ctx, st, store, rt, js, o, res, w)
		if err != nil {
			return nil, err
		}
		reported = append(reported, second...)
	}
	if err := runReports(ctx, st, o, reported, res); err != nil {
		return nil, err
	}
	if jl != nil {
		if err := jl.wait(ctx, st); err != nil {
			return nil, err
		}
	}
	jobs, err := st.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		res.Jobs[jobstore.StateName(j.GetState())]++
		if j.GetState() == amrpipev1.JobState_JOB_STATE_FAILED {
			res.JobsFailed++
		}
	}
	return res, nil
}

// fresh makes dir and removes what an earlier run wrote there.
func fresh(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{InventoryFile, InventoryFile + "-wal", InventoryFile + "-shm", ChangesFile, RecordsFile, ValidationDir, RunReportDir} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// clonePlans copies plans with a plan id suffix, their URLs moved by move (server-relative path
// → absolute URL), incremental or not.
func clonePlans(plans []*amrpipev1.PlanRequest, suffix string, move func(string) string, incremental bool) []*amrpipev1.PlanRequest {
	out := make([]*amrpipev1.PlanRequest, 0, len(plans))
	for _, p := range plans {
		c := proto.Clone(p).(*amrpipev1.PlanRequest)
		c.PlanId, c.Incremental, c.Submitted = p.GetPlanId()+suffix, incremental, timestamppb.Now()
		c.SiteUrl = move(pathOf(p.GetSiteUrl()))
		for i, t := range c.Targets {
			c.Targets[i] = move(pathOf(t))
		}
		out = append(out, c)
	}
	return out
}

// destinationPlans are the plans of the source's sites that the destination copies, moved to the
// destination's server and site URLs.
func destinationPlans(st *devstack.Stack, plans []*amrpipev1.PlanRequest) []*amrpipev1.PlanRequest {
	sites := st.DestTenant.SiteMap()
	var out []*amrpipev1.PlanRequest
	for _, p := range plans {
		site := pathOf(p.GetSiteUrl())
		to, ok := sites[site]
		if !ok {
			continue
		}
		out = append(out, clonePlans([]*amrpipev1.PlanRequest{p}, "-destination", func(path string) string {
			return st.DestSiteURL(to + strings.TrimPrefix(path, site))
		}, false)...)
	}
	return out
}

// pathOf is the server-relative path of an absolute URL (the URL itself when it has none).
func pathOf(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Path
	}
	return u
}

// hostOf is the tenant an absolute URL names: its host, as the planner labels jobs.
func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}

// runPasses begins an inventory pass per plan (its tenant's, scoped to the plan's site), routes
// the plans' records to them, submits the plans, waits until the pipeline is idle and the sink
// has committed everything, and ends each pass, complete when every job of its plan ended done.
func runPasses(ctx context.Context, st *devstack.Stack, store *inventory.Store, rt *router, js jetstream.JetStream, o Options,
	kind inventory.Kind, plans []*amrpipev1.PlanRequest, res *Result, w io.Writer) ([]*inventory.Pass, error) {
	passes := make([]*inventory.Pass, 0, len(plans))
	for _, p := range plans {
		opts := p.GetOptions()
		pass, err := store.BeginPass(ctx, inventory.PassInfo{Tenant: hostOf(p.GetSiteUrl()), Scope: pathOf(p.GetSiteUrl()),
			PlanIDs: []string{p.GetPlanId()}, Kind: kind, Permissions: opts.GetIncludePermission() || opts.GetIncludeSecurity()})
		if err != nil {
			return nil, err
		}
		rt.route(p.GetPlanId(), pass)
		passes = append(passes, pass)
	}
	begin := time.Now()
	ids := make([]string, 0, len(plans))
	for _, p := range plans {
		if err := st.Submit(ctx, p); err != nil {
			return nil, err
		}
		ids = append(ids, p.GetPlanId())
	}
	if err := o.Watch(ctx, ids); err != nil {
		return nil, err
	}
	idle := time.Now()
	if err := drained(ctx, js); err != nil {
		return nil, err
	}
	caughtUp := time.Now()
	jobs, err := st.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	var records int64
	for i, p := range plans {
		n, done := 0, 0
		for _, j := range jobs {
			if j.GetSpec().GetPlanId() == p.GetPlanId() {
				n++
				if j.GetState() == amrpipev1.JobState_JOB_STATE_DONE {
					done++
				}
			}
		}
		if err := passes[i].End(ctx, n > 0 && done == n); err != nil {
			return nil, err
		}
		info := passes[i].Info()
		res.Records += info.Counts.Records
		res.Passes++
		records += info.Counts.Records
	}
	fmt.Fprintf(w, "%d %s passes, %d records: pipeline idle after %s, inventory caught up %s later, passes ended in %s\n",
		len(plans), kind, records, idle.Sub(begin).Round(time.Millisecond), caughtUp.Sub(idle).Round(time.Millisecond), time.Since(caughtUp).Round(time.Millisecond))
	return passes, nil
}

// validateDestination validates the destination's inventory tenant against the source's through
// the destination's site mapping and login mapping, writes the reports and compares the failures
// with the seeded differences.
func validateDestination(ctx context.Context, st *devstack.Stack, store *inventory.Store, o Options, res *Result, w io.Writer) error {
	begin := time.Now()
	vo := validate.Options{Logins: st.DestTenant.LoginMap(), MtimeTolerance: o.MtimeTolerance}
	sites := st.DestTenant.SiteMap()
	for _, from := range sortedKeys(sites) {
		vo.Mappings = append(vo.Mappings, validate.Mapping{From: from, To: sites[from]})
	}
	var froms, tos []string
	for _, m := range vo.Mappings {
		froms, tos = append(froms, m.From), append(tos, m.To)
	}
	v, err := validate.Validate(ctx, validate.NewInventorySource(store, hostOf(st.SimURL)).Under(froms...),
		validate.NewInventorySource(store, hostOf(st.DestURL)).Under(tos...), vo)
	if err != nil {
		return err
	}
	res.Validation = v
	took := time.Since(begin)
	seeded := st.DestTenant.Seeded()
	res.Seeded = len(seeded)
	res.FindingsMismatch = compareFindings(v, seeded)
	res.ValidationReports, err = validate.WriteReports(filepath.Join(o.Out, ValidationDir), v, validate.DefaultHTMLItems, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nvalidation (%s): %d items compared in %d lists: %d passed, %d failed (%s)\n", took.Round(time.Millisecond),
		v.Total.Items, len(v.Lists), v.Total.Passed, v.Total.Failed, byCheck(v))
	if res.FindingsMismatch == "" {
		fmt.Fprintf(w, "the failures are exactly the destination's %d seeded differences\n", len(seeded))
	} else {
		fmt.Fprintf(w, "the failures differ from the destination's %d seeded differences:\n%s\n", len(seeded), res.FindingsMismatch)
	}
	return nil
}

func byCheck(v *validate.Result) string {
	var out []string
	for _, c := range validate.Checks {
		if n := v.Total.ByCheck[c]; n > 0 {
			out = append(out, fmt.Sprintf("%s %d", c, n))
		}
	}
	return strings.Join(out, ", ")
}

// secondPass changes the tenant, runs the plans again incrementally, writes and publishes the
// change sets and compares them with the simulator's changes. It returns the incremental plans.
func secondPass(ctx context.Context, st *devstack.Stack, store *inventory.Store, rt *router, js jetstream.JetStream, o Options, res *Result, w io.Writer) ([]*amrpipev1.PlanRequest, error) {
	made := st.Tenant.Mutate(o.Changes)
	plans := clonePlans(o.Plans, "-pass2", st.SiteURL, true)
	fmt.Fprintf(w, "\nsecond pass: the simulator made %d changes to the tenant; the same plans again, incremental\n\n", len(made))
	passes, err := runPasses(ctx, st, store, rt, js, o, inventory.Incremental, plans, res, w)
	if err != nil {
		return nil, err
	}
	res.ChangeSet = map[inventory.ChangeKind]int{}
	res.ChangesCSV = filepath.Join(o.Out, ChangesFile)
	f, err := os.Create(res.ChangesCSV)
	if err != nil {
		return nil, err
	}
	var all []inventory.Change
	var subjects []string
	for i, p := range passes {
		cs, err := store.Changes(ctx, 0, p.Info().ID)
		if err != nil {
			return nil, errors.Join(err, f.Close())
		}
		for _, c := range cs.Changes {
			res.ChangeSet[c.Kind]++
		}
		all = append(all, cs.Changes...)
		if err := writeChangeCSV(f, cs, i == 0); err != nil {
			return nil, errors.Join(err, f.Close())
		}
		if _, err := changes.Publish(ctx, js, cs); err != nil {
			return nil, errors.Join(err, f.Close())
		}
		subjects = append(subjects, topology.ChangesSubject(cs.Tenant, cs.To))
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	want, n := expectedChanges(made, o.Plans)
	res.SimulatorChanges = n
	res.ChangesMismatch = compareChanges(all, want)
	var kinds []string
	for _, k := range []inventory.ChangeKind{inventory.Added, inventory.Changed, inventory.Deleted, inventory.Moved, inventory.Permissions} {
		kinds = append(kinds, fmt.Sprintf("%d %s", res.ChangeSet[k], k))
	}
	fmt.Fprintf(w, "\nchange set: %d changes (%s), written to %s and published on %s\n", len(all), strings.Join(kinds, ", "), res.ChangesCSV,
		strings.Join(subjects, ", "))
	if res.ChangesMismatch == "" {
		fmt.Fprintf(w, "the change set equals the simulator's %d changes under the plans' targets (%d objects: a file's list item beside its file)\n", n, len(want))
	} else {
		fmt.Fprintf(w, "the change set differs from the simulator's %d changes:\n%s\n", n, res.ChangesMismatch)
	}
	return plans, nil
}

// writeChangeCSV appends cs to w as ChangeSet.WriteCSV writes it, the header only when first.
func writeChangeCSV(w io.Writer, cs *inventory.ChangeSet, first bool) error {
	var b strings.Builder
	if err := cs.WriteCSV(&b); err != nil {
		return err
	}
	s := b.String()
	if !first {
		_, s, _ = strings.Cut(s, "\n")
	}
	_, err := io.WriteString(w, s)
	return err
}

// runReports writes each plan's run report (pkg/runreport: CSVs and report.html) into its own
// directory.
func runReports(ctx context.Context, st *devstack.Stack, o Options, plans []*amrpipev1.PlanRequest, res *Result) error {
	c, err := client.New(ctx, st.Conn)
	if err != nil {
		return err
	}
	for _, p := range plans {
		r, err := runreport.Build(ctx, c, p.GetPlanId())
		if err != nil {
			return err
		}
		dir := filepath.Join(o.Out, RunReportDir, p.GetPlanId())
		paths, err := r.WriteCSV(dir)
		if err != nil {
			return err
		}
		html, err := r.WriteHTML(dir)
		if err != nil {
			return err
		}
		res.RunReports = append(res.RunReports, append(paths, html)...)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// jsonl writes every record to a JSON Lines file beside the inventory (the sink of earlier demos).
type jsonl struct {
	sk     *sink.JSONL
	cancel context.CancelFunc
	done   chan error
	closed bool
}

func startJSONL(ctx context.Context, st *devstack.Stack, path string) (*jsonl, error) {
	sk, err := sink.Create(path)
	if err != nil {
		return nil, err
	}
	nc, js, err := st.Connect()
	if err != nil {
		return nil, errors.Join(err, sk.Close())
	}
	cctx, cancel := context.WithCancel(ctx)
	j := &jsonl{sk: sk, cancel: cancel, done: make(chan error, 1)}
	go func() {
		defer nc.Close()
		j.done <- sink.Consume(cctx, js, sk.Write)
	}()
	return j, nil
}

// wait waits until the file holds every record of the stream.
func (j *jsonl) wait(ctx context.Context, st *devstack.Stack) error {
	got, err := st.Records(ctx)
	if err != nil {
		return err
	}
	if err := j.sk.WaitRecords(ctx, int64(got.Records)); err != nil {
		return fmt.Errorf("records file has %d of %d records: %w", j.sk.Records(), got.Records, err)
	}
	return nil
}

func (j *jsonl) stop() error {
	j.cancel()
	err := <-j.done
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, j.sk.Close())
}
