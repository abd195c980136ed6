package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/progress"
	"github.com/amrpipe/amrpipe/pkg/downstream/sink"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

func devCommand() *cobra.Command {
	var (
		out                string
		rate               float64
		replicas           int
		queue, plain, logs bool
		small, large       int64
		timeout            time.Duration
		secondPass         bool
		changes            int
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole pipeline on the embedded default and export the sample tenant, with live progress",
		Long: `dev starts an embedded NATS JetStream server, Azurite, the SharePoint simulator (a synthetic
tenant of several sites) and the five services in this process, submits a sample plan of about
218K items, shows a progress bar per AMR job and writes every record to a JSON Lines file.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			w := cmd.OutOrStdout()
			var logOut io.Writer
			if logs {
				logOut = cmd.ErrOrStderr()
			}
			begin := time.Now()
			fmt.Fprintln(w, "starting embedded JetStream, Azurite, the SharePoint simulator and the five services…")
			st, err := devstack.Start(ctx, devstack.Options{Profile: tenant.DefaultProfile(), Rate: rate, SimWorkers: 4,
				Replicas: replicas, Queue: queue, Plaintext: plain, Small: small, Large: large, Log: logOut, LogLevel: "info"})
			if err != nil {
				return err
			}
			defer func() {
				if cerr := st.Close(); cerr != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "amrctl: stopping the stack:", cerr)
				}
			}()
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			path := filepath.Join(out, "records.jsonl")
			sk, err := sink.Create(path)
			if err != nil {
				return err
			}
			sinkConn, sinkJS, err := st.Connect()
			if err != nil {
				return err
			}
			defer sinkConn.Close()
			sinkCtx, stopSink := context.WithCancel(ctx)
			defer stopSink()
			sinkDone := make(chan error, 1)
			go func() { sinkDone <- sink.Consume(sinkCtx, sinkJS, sk.Write) }()

			plans := testenv.DemoPlans(st.SiteURL)
			for _, p := range plans {
				if err := st.Submit(ctx, p); err != nil {
					return err
				}
			}
			fmt.Fprintf(w, "ready in %s; simulator at %s; submitted %d plans (thresholds %d / %d items)\n\n",
				time.Since(begin).Truncate(time.Millisecond), st.SimURL, len(plans), small, large)

			display := progress.New(w, term.IsTerminal(int(os.Stdout.Fd())))
			watchErr := watch(ctx, st, display)
			display.Close()
			if watchErr != nil {
				return watchErr
			}
			// Every record the parser published is in the stream; let the sink catch up with it.
			got, err := st.Records(ctx)
			if err != nil {
				return err
			}
			var second *passReport
			if secondPass {
				if second, err = runSecondPass(ctx, w, st, plans, changes, display.Summary(), got); err != nil {
					return err
				}
				got = second.got
			}
			if err := sk.WaitRecords(ctx, int64(got.Records)); err != nil {
				return fmt.Errorf("sink has %d of %d records: %w", sk.Records(), got.Records, err)
			}
			stopSink()
			if err := <-sinkDone; err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			if err := sk.Close(); err != nil {
				return err
			}
			if err := summarize(ctx, w, st, display.Summary(), got, path, time.Since(begin)); err != nil {
				return err
			}
			if second != nil {
				second.print(w)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "out", "directory for records.jsonl")
	f.Float64Var(&rate, "rate", 20000, "simulator export speed per AMR job, objects/s (SharePoint's lab figure is ~400; 0 = unlimited)")
	f.IntVar(&replicas, "replicas", 1, "replicas of every service")
	f.BoolVar(&queue, "queue", false, "SharePoint also reports through an Azure Queue, read beside progress polling")
	f.BoolVar(&plain, "plaintext", false, "turn manifest encryption off")
	f.BoolVar(&logs, "logs", false, "print the services' logs to stderr")
	f.Int64Var(&small, "small", testenv.DemoSmall, "planner: folders under this many items are batched into multi-URL jobs")
	f.Int64Var(&large, "large", testenv.DemoLarge, "planner: folders over this many items are probed and split")
	f.DurationVar(&timeout, "timeout", 15*time.Minute, "give up after this long")
	f.BoolVar(&secondPass, "second-pass", false, "after the full pass, change the tenant (--changes) and run the same plans incrementally; report both passes")
	f.IntVar(&changes, "changes", 500, "changes the simulator makes before the second pass")
	return cmd
}

// passReport compares an incremental second pass with the full pass before it.
type passReport struct {
	changes                  int
	first, second            progress.Summary // the second pass's own jobs
	firstContent, secondDiff int              // content objects downstream: all after the first, new or again in the second
	got                      *testenv.Downstream
}

// runSecondPass makes changes to the tenant, submits the demo's plans again as incremental plans
// and waits until the pipeline is idle. The first pass committed a change token for every list it
// read from its root, so the second reads only what changed (and folder targets in full).
func runSecondPass(ctx context.Context, w io.Writer, st *devstack.Stack, plans []*amrpipev1.PlanRequest, changes int,
	first progress.Summary, firstGot *testenv.Downstream) (*passReport, error) {
	made := st.Tenant.Mutate(changes)
	fmt.Fprintf(w, "\nsecond pass: %d changes made to the tenant; the same plans again, incremental\n\n", len(made))
	for _, p := range plans {
		p2 := proto.Clone(p).(*amrpipev1.PlanRequest)
		p2.PlanId, p2.Incremental, p2.Submitted = p.GetPlanId()+"-pass2", true, timestamppb.Now()
		if err := st.Submit(ctx, p2); err != nil {
			return nil, err
		}
	}
	display := progress.New(w, term.IsTerminal(int(os.Stdout.Fd())))
	err := watch(ctx, st, display)
	display.Close()
	if err != nil {
		return nil, err
	}
	got, err := st.Records(ctx)
	if err != nil {
		return nil, err
	}
	all := display.Summary()
	r := &passReport{changes: len(made), first: first, got: got, firstContent: len(firstGot.Content),
		second: progress.Summary{Jobs: all.Jobs - first.Jobs, Objects: all.Objects - first.Objects, Records: all.Records - first.Records}}
	for o, n := range got.Content {
		r.secondDiff += max(n-firstGot.Content[o], 0)
	}
	return r, nil
}

func (r *passReport) print(w io.Writer) {
	fmt.Fprintf(w, "full pass:   %d AMR jobs, %d objects exported by SharePoint, %d records, %d content objects downstream\n",
		r.first.Jobs, r.first.Objects, r.first.Records, r.firstContent)
	fmt.Fprintf(w, "second pass: %d AMR jobs, %d objects exported by SharePoint, %d records, %d content objects downstream (after %d changes)\n",
		r.second.Jobs, r.second.Objects, r.second.Records, r.secondDiff, r.changes)
}

// watch feeds job records to the display until the pipeline is idle. The live watch keeps the bars
// moving; a snapshot every half second makes sure no final state is missed (a KV watcher of a
// busy bucket can be reset under load and skip intermediate values).
func watch(ctx context.Context, st *devstack.Stack, d *progress.Display) error {
	changes, err := st.Store.Watch(ctx, "")
	if err != nil {
		return err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				changes = nil // the snapshots carry on
				continue
			}
			if c.Record != nil {
				d.Update(c.Record)
			}
		case <-tick.C:
			jobs, err := st.Jobs(ctx)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				d.Update(j)
			}
			if !d.AllDone() {
				continue
			}
			idle, _, err := st.Idle(ctx)
			if err != nil {
				return err
			}
			if idle {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func summarize(ctx context.Context, w io.Writer, st *devstack.Stack, s progress.Summary, got *testenv.Downstream, path string, took time.Duration) error {
	var states []string
	for k, v := range s.ByState {
		states = append(states, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(states)
	byType := map[string]int{}
	for o, n := range got.Content {
		byType[o.Type] += n
	}
	var types []string
	for k, v := range byType {
		types = append(types, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(types)
	fmt.Fprintf(w, "\n%d AMR jobs (%s), %d objects exported by SharePoint\n", s.Jobs, strings.Join(states, ", "), s.Objects)
	fmt.Fprintf(w, "%d records in %d batches downstream: %s\n", got.Records, got.Batches, strings.Join(types, ", "))
	fmt.Fprintf(w, "records: %s\n", path)
	fmt.Fprintf(w, "took %s (%.0f records/s end to end)\n", took.Truncate(time.Millisecond), float64(got.Records)/took.Seconds())
	if s.ByState["failed"] > 0 {
		return fmt.Errorf("%d jobs failed (amrctl jobs on a deployed system shows why)", s.ByState["failed"])
	}
	return nil
}
