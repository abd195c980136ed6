// Package planner is the planner stage: it consumes plans (PlanRequest on amr.plans.submit) and
// probe results (ProbeResult on amr.plans.probe), sizes the targets through SharePoint's folder
// REST calls (every call paced by the shared per-host throttling budget), applies pkg/planner's
// rules, and publishes the resulting JobSpecs on amr.specs.<planID> with the spec id as
// Nats-Msg-Id.
//
// Planning is deterministic per plan: the first output of a plan or probe result is stored in the
// amr_plans bucket before anything is published, and a redelivery republishes exactly that output
// (or nothing once all of it was published), although planning again could yield other spec ids
// if the tenant's sizes changed meanwhile. Invalid input (a relative site URL, a target outside
// the site, a target that is not a list, library or folder) is dead-lettered with the reason.
package planner

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Def is the planner's row in the stage table.
func Def() stage.Def {
	return stage.Define(stage.Def{
		Name:      topology.StagePlanner,
		Summary:   "splits plans into AMR jobs by SharePoint's sizing rules, sized through the folder REST calls",
		Uses:      stage.UsesSharePoint,
		Consumers: []string{topology.ConsumerPlanner},
		Publishes: []string{topology.SpecSubject("<planID>")},
	}, New)
}

// Config configures the planner stage; SharePoint and -max-throttle-wait are the shared parts.
type Config struct {
	// Planner holds the sizing thresholds (Now and Logger are set by New).
	Planner sizing.Config
	// Concurrency is how many plans are planned at once. Default 4.
	Concurrency int
}

// RegisterFlags binds the configuration to flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	p := &c.Planner
	fs.Int64Var(&p.Small, "small", flagenv.Or(p.Small, sizing.DefaultSmall), "folders with fewer items are batched into multi-URL jobs")
	fs.Int64Var(&p.Large, "large", flagenv.Or(p.Large, sizing.DefaultLarge), "folders with more items get a shallow probe job")
	fs.IntVar(&p.MaxURLsPerJob, "max-urls", flagenv.Or(p.MaxURLsPerJob, spo.MaxURLsPerJob), "most URLs in one multi-URL job (SharePoint allows 5000)")
	fs.Int64Var(&p.MaxItemsPerBatch, "max-batch-items", p.MaxItemsPerBatch, "most items in one multi-URL job (0: -large)")
	fs.Int64Var(&p.IncrementalMaxItems, "incremental-max-items", p.IncrementalMaxItems,
		"read lists larger than this in full instead of incrementally (change-token jobs over 10 min are cancelled); 0: no limit")
	fs.DurationVar(&p.TokenMaxAge, "token-max-age", flagenv.Or(p.TokenMaxAge, sizing.DefaultTokenMaxAge), "older change tokens are not used")
	fs.BoolVar(&p.ListLargeFolders, "list-large-folders", p.ListLargeFolders,
		"split large folders by listing their subfolders (REST) instead of a shallow probe job through AMR")
	fs.IntVar(&c.Concurrency, "concurrency", flagenv.Or(c.Concurrency, 4), "plans planned at once")
}

// Stage is the planner.
type Stage struct {
	cfg     Config
	deps    stage.Deps
	log     *slog.Logger
	planner *sizing.Planner
	m       metrics
}

type metrics struct {
	plans *prometheus.CounterVec
	specs *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		plans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_planner_plans_total",
			Help: "Plans and probe results handled, by source (plan, probe) and outcome (planned, replayed: a redelivery of a stored planning).",
		}, []string{"source", "outcome"}),
		specs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_planner_specs_published_total",
			Help: "Job specs published (duplicates not counted), by kind: multi, single, probe, security, incremental.",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.plans, m.specs} {
		if err := reg.Register(c); err != nil {
			return metrics{}, fmt.Errorf("planner metrics: %w", err)
		}
	}
	return m, nil
}

// New builds the stage: the planning rules and the metrics.
func New(cfg Config, deps stage.Deps) (*Stage, error) {
	if deps.SharePoint == nil {
		return nil, errors.New("planner: no SharePoint client")
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	log := deps.Logger()
	pcfg := cfg.Planner
	pcfg.Logger = log
	p, err := sizing.New(pcfg)
	if err != nil {
		return nil, err
	}
	s := &Stage{cfg: cfg, deps: deps, log: log, planner: p}
	if s.m, err = newMetrics(deps.Runtime.Registry); err != nil {
		return nil, err
	}
	return s, nil
}

// Run handles plans and probe results until ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	return s.deps.Consume(ctx, stage.Consumer{Name: topology.ConsumerPlanner, Handler: s.handle, Concurrency: s.cfg.Concurrency,
		OnDeadLetter: s.planDeadLettered})
}

// planDeadLettered is the planner's dead-letter hook: a plan or probe result given up on is
// recorded as a failed planning with the reason, so the plan shows itself incomplete
// (jobstore.PlanStatus). A planning stored before stands.
func (s *Stage) planDeadLettered(ctx context.Context, msg jetstream.Msg, reason string) error {
	req, pr := &amrpipev1.PlanRequest{}, &amrpipev1.ProbeResult{}
	switch {
	case bus.Decode(msg, req) == nil && msg.Subject() == topology.SubjectPlanSubmit && topology.CheckToken(req.GetPlanId()) == nil:
		return s.deps.Jobs.FailPlanning(ctx, jobstore.PlanIndex(req.GetPlanId()), req.GetPlanId(), reason)
	case bus.Decode(msg, pr) == nil && msg.Subject() == topology.SubjectPlanProbe && pr.GetSpec().GetSpecId() != "" &&
		topology.CheckToken(pr.GetSpec().GetPlanId()) == nil:
		return s.deps.Jobs.FailPlanning(ctx, jobstore.ProbeIndex(pr.GetSpec().GetSpecId()), pr.GetSpec().GetPlanId(), reason)
	}
	return nil // not a plan we can name: the dead letter is all there is to say
}

// handle dispatches on the payload type (the Amr-Type header, else the subject).
func (s *Stage) handle(ctx context.Context, msg jetstream.Msg) error {
	typ := msg.Headers().Get(bus.HeaderType)
	switch {
	case typ == string((&amrpipev1.PlanRequest{}).ProtoReflect().Descriptor().FullName()),
		typ == "" && msg.Subject() == topology.SubjectPlanSubmit:
		req := &amrpipev1.PlanRequest{}
		if err := bus.Decode(msg, req); err != nil {
			return err
		}
		return s.plan(ctx, req)
	case typ == string((&amrpipev1.ProbeResult{}).ProtoReflect().Descriptor().FullName()),
		typ == "" && msg.Subject() == topology.SubjectPlanProbe:
		pr := &amrpipev1.ProbeResult{}
		if err := bus.Decode(msg, pr); err != nil {
			return err
		}
		return s.probe(ctx, pr)
	default:
		return &bus.Permanent{Reason: fmt.Sprintf("planner takes PlanRequest and ProbeResult, got %q on %s", typ, msg.Subject())}
	}
}

// plan plans a PlanRequest once and publishes its specs.
func (s *Stage) plan(ctx context.Context, req *amrpipev1.PlanRequest) error {
	if err := checkPlan(req); err != nil {
		return &bus.Permanent{Reason: sas.Redact(fmt.Sprintf("plan %q: %v", req.GetPlanId(), err))}
	}
	tenant := req.GetTenant()
	if tenant == "" {
		tenant = hostOf(req.GetSiteUrl())
	}
	return s.once(ctx, "plan", jobstore.PlanIndex(req.GetPlanId()), req.GetPlanId(), func(ctx context.Context) ([]*amrpipev1.JobSpec, error) {
		sz, err := NewSizer(s.deps.SharePoint, req.GetSiteUrl())
		if err != nil {
			return nil, &bus.Permanent{Reason: err.Error()}
		}
		jobs, err := s.firstJobs(ctx, req, sz)
		if err != nil {
			return nil, err
		}
		return toProto(jobs, tenant), nil
	})
}

// firstJobs plans req's first jobs with sz: the plan's stored change tokens when incremental,
// then the size rules.
func (s *Stage) firstJobs(ctx context.Context, req *amrpipev1.PlanRequest, sz *Sizer) ([]sizing.JobSpec, error) {
	preq := sizing.Request{
		PlanID: req.GetPlanId(), SiteURL: req.GetSiteUrl(), Targets: req.GetTargets(),
		Options: OptionsFromProto(req.GetOptions()), Incremental: req.GetIncremental(),
	}
	if preq.Incremental {
		if err := s.changeTokens(ctx, req, sz, &preq); err != nil {
			return nil, fmt.Errorf("plan %s: change tokens: %w", req.GetPlanId(), err)
		}
	}
	jobs, err := s.planner.Plan(ctx, preq, sz)
	if err != nil {
		return nil, planError(err)
	}
	return jobs, nil
}

// ErrInvalidPlan marks a plan DryRun refuses before any call: the stage dead-letters such a plan.
var ErrInvalidPlan = errors.New("invalid plan")

// DryRun plans req exactly as the stage would (validation, stored change tokens, the size rules
// over the real folder sizes) and returns its first jobs and the Sizer that sized them, without
// publishing or recording anything: `amrctl estimate`.
func (s *Stage) DryRun(ctx context.Context, req *amrpipev1.PlanRequest) ([]sizing.JobSpec, *Sizer, error) {
	if err := checkPlan(req); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidPlan, err)
	}
	sz, err := NewSizer(s.deps.SharePoint, req.GetSiteUrl())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidPlan, err)
	}
	jobs, err := s.firstJobs(ctx, req, sz)
	return jobs, sz, err
}

// probe plans the subfolders of a probe job once and publishes their specs.
func (s *Stage) probe(ctx context.Context, pr *amrpipev1.ProbeResult) error {
	spec := pr.GetSpec()
	if err := checkProbe(spec); err != nil {
		return &bus.Permanent{Reason: sas.Redact(fmt.Sprintf("probe result of job %q: %v", pr.GetJobId(), err))}
	}
	return s.once(ctx, "probe", jobstore.ProbeIndex(spec.GetSpecId()), spec.GetPlanId(), func(ctx context.Context) ([]*amrpipev1.JobSpec, error) {
		sz, err := NewSizer(s.deps.SharePoint, spec.GetSiteUrl())
		if err != nil {
			return nil, &bus.Permanent{Reason: err.Error()}
		}
		res := sizing.ProbeResult{Job: SpecFromProto(spec)}
		for _, f := range pr.GetSubfolders() {
			// A node's size is its file count (SMTotalFileCount), as SharePoint's thresholds are.
			n := sizing.Node{URL: f.GetUrl(), WebURL: f.GetWebUrl(), ListID: f.GetListId(), Items: f.GetFiles()}
			if f.GetTotalsUnknown() || f.GetFiles() < 0 {
				n.Items = sizing.UnknownItems
			}
			res.Subfolders = append(res.Subfolders, n)
		}
		jobs, err := s.planner.Continue(ctx, res, sz)
		if err != nil {
			return nil, planError(err)
		}
		return toProto(jobs, spec.GetTenant()), nil
	})
}

// once returns the stored planning under index, or plans, stores and returns it, and publishes
// it unless a previous delivery did.
func (s *Stage) once(ctx context.Context, source, index, planID string, plan func(context.Context) ([]*amrpipev1.JobSpec, error)) error {
	jobs := s.deps.Jobs
	out, err := jobs.Planning(ctx, index)
	if err != nil {
		return err
	}
	outcome := "replayed"
	if out == nil {
		specs, err := plan(ctx)
		if err != nil {
			return err
		}
		if out, err = jobs.SavePlanning(ctx, index, planID, specs); err != nil {
			return err
		}
		outcome = "planned"
	}
	log := s.log.With("plan_id", planID, "index", index, "specs", len(out.Specs))
	if reason := out.Index.GetFailed(); reason != "" {
		return &bus.Permanent{Reason: "planned before and dead-lettered: " + reason}
	}
	if out.Index.GetPublished() {
		log.Info("planned and published before; nothing to do")
		s.m.plans.WithLabelValues(source, outcome).Inc()
		return nil
	}
	subject := topology.SpecSubject(planID)
	for _, spec := range out.Specs {
		ack, err := bus.Publish(ctx, s.deps.Runtime.JS, subject, spec, spec.GetSpecId())
		if err != nil {
			return fmt.Errorf("publish spec %s: %w", spec.GetSpecId(), err)
		}
		if !ack.Duplicate {
			s.m.specs.WithLabelValues(SpecKind(spec)).Inc()
		}
	}
	if err := jobs.MarkPublished(ctx, index, out); err != nil {
		return err
	}
	s.m.plans.WithLabelValues(source, outcome).Inc()
	log.Info("specs published", "outcome", outcome)
	return nil
}

func toProto(jobs []sizing.JobSpec, tenant string) []*amrpipev1.JobSpec {
	out := make([]*amrpipev1.JobSpec, len(jobs))
	for i, j := range jobs {
		out[i] = SpecToProto(j, tenant)
	}
	return out
}

// changeTokens reads the stored change token of every list holding a target and of every folder
// target, and marks the lists whose token SharePoint rejected.
func (s *Stage) changeTokens(ctx context.Context, req *amrpipev1.PlanRequest, sz *Sizer, preq *sizing.Request) error {
	rejected := map[string]bool{}
	for _, id := range req.GetTokenRejectedLists() {
		rejected[jobstore.TokenKey(id)] = true
	}
	preq.ChangeTokens = map[string]sizing.StoredToken{}
	preq.ScopeTokens = map[string]sizing.StoredToken{}
	preq.TokenRejected = map[string]bool{}
	stored := func(listID, scope string) (sizing.StoredToken, bool, error) {
		tok, _, err := s.deps.Jobs.ScopedToken(ctx, listID, scope)
		if errors.Is(err, jobstore.ErrNotFound) {
			return sizing.StoredToken{}, false, nil
		}
		if err != nil {
			return sizing.StoredToken{}, false, err
		}
		return sizing.StoredToken{Token: tok.GetToken(), IssuedAt: tok.GetIssued().AsTime()}, true, nil
	}
	for _, t := range req.GetTargets() {
		n, err := sz.Resolve(ctx, t)
		if err != nil {
			return err
		}
		if rejected[jobstore.TokenKey(n.ListID)] {
			preq.TokenRejected[n.ListID] = true
			continue
		}
		if n.Kind == sizing.KindFolder {
			tok, ok, err := stored(n.ListID, n.URL)
			if err != nil {
				return err
			}
			if ok {
				preq.ScopeTokens[sizing.ScopeKey(n.URL)] = tok
			}
		}
		if _, done := preq.ChangeTokens[n.ListID]; done {
			continue
		}
		tok, ok, err := stored(n.ListID, "")
		if err != nil {
			return err
		}
		if ok {
			preq.ChangeTokens[n.ListID] = tok
		}
	}
	return nil
}

// planError classifies an error of Plan or Continue: a Sizer error carries its class already,
// a cancelled context is retried, anything else is the planner refusing the input.
func planError(err error) error {
	var se *SizeError
	if errors.As(err, &se) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &bus.Permanent{Reason: sas.Redact(err.Error())}
}

// checkPlan validates what a user controls, so that bad input is dead-lettered with a reason a
// user understands.
func checkPlan(req *amrpipev1.PlanRequest) error {
	if err := topology.CheckToken(req.GetPlanId()); err != nil {
		return fmt.Errorf("plan id: %w", err)
	}
	if _, err := absoluteURL(req.GetSiteUrl()); err != nil {
		return fmt.Errorf("site_url: %w", err)
	}
	if len(req.GetTargets()) == 0 {
		return errors.New("no targets")
	}
	// Targets are compared as text, not parsed: SharePoint names may hold '#' and '%'.
	root := strings.ToLower(strings.TrimRight(req.GetSiteUrl(), "/"))
	for _, t := range req.GetTargets() {
		lt := strings.ToLower(strings.TrimRight(t, "/"))
		if lt != root && !strings.HasPrefix(lt, root+"/") {
			return fmt.Errorf("target %q is not under site %s", t, req.GetSiteUrl())
		}
	}
	if req.GetOptions().GetIncludeDirectDescendantsOnly() {
		return errors.New("include_direct_descendants_only is set by the planner, not by a plan")
	}
	return nil
}

// checkProbe validates a probe result's spec: it must be a probe job of a plan.
func checkProbe(spec *amrpipev1.JobSpec) error {
	switch {
	case spec == nil:
		return errors.New("no spec")
	case !spec.GetProbe():
		return fmt.Errorf("spec %s is not a probe job", spec.GetSpecId())
	case len(spec.GetUrls()) != 1 || len(spec.GetListIds()) != 1:
		return fmt.Errorf("probe spec %s has %d URLs and %d lists, want one of each", spec.GetSpecId(), len(spec.GetUrls()), len(spec.GetListIds()))
	}
	if err := topology.CheckToken(spec.GetPlanId()); err != nil {
		return fmt.Errorf("plan id: %w", err)
	}
	if err := topology.CheckToken(spec.GetSpecId()); err != nil {
		return fmt.Errorf("spec id: %w", err)
	}
	if _, err := absoluteURL(spec.GetSiteUrl()); err != nil {
		return fmt.Errorf("site_url: %w", err)
	}
	return nil
}

// absoluteURL accepts an absolute http(s) URL without query or fragment.
func absoluteURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q does not parse", s)
	case (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q has a query or fragment", s)
	}
	return u, nil
}

// hostOf is a URL's host name (the default tenant label).
func hostOf(s string) string {
	if u, err := url.Parse(s); err == nil {
		return strings.ToLower(u.Hostname())
	}
	return ""
}
