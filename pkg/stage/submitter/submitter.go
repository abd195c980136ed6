// Package submitter is the submitter stage: it turns each JobSpec (amr.specs.<planID>) into one
// SharePoint AMR job (CreateSPAsyncReadJob, or ...WithMultiUrl for a multi-URL spec), records it
// (JobRecord in amr_jobs) and announces it to the progress-relay (SubmittedJob on
// amr.jobs.submitted.<jobID>, Nats-Msg-Id the job id). Per spec:
//
//  1. Idempotency first: amr_submissions maps the spec id to what was done. A spec seen before
//     creates no job; its JobRecord and SubmittedJob (or re-plan) are made sure of again.
//  2. Encryption (on by default): a fresh AES-256 key, wrapped under the KEK and stored
//     create-once under the spec id before SharePoint is called (SharePoint keeps no copy); a
//     stored, unexpired key is reused.
//  3. SAS URLs minted from the storage account and checked by SharePoint's rules (manifest
//     container Read+Write only, queue Add); a bad one is dead-lettered with the reason.
//  4. The create call, through the shared SharePoint caller (pkg/stage): paced by the tenant
//     host's throttling budget (a 429/503 Retry-After pauses every replica; RateLimit-* headers
//     slow calls before that); a pause longer than -max-throttle-wait hands the message back
//     (Nak with the pause as delay).
//  5. A change token SharePoint rejects (-2146232832) turns the spec into a re-plan: a
//     PlanRequest for its targets with its lists in token_rejected_lists (full read).
//  6. The outcome is stored in amr_submissions, the JobRecord written, the SubmittedJob
//     published, and only then the spec acknowledged.
//
// One window cannot be closed: if the process dies after SharePoint accepted a create call but
// before the outcome is stored (or the answer is lost on the way: a timeout, a 502/504 retried),
// the redelivered spec creates a second job. The first is orphaned: nothing follows it, so it
// yields no records downstream. Every create call is logged before ("submitting spec") and after
// ("SharePoint accepted spec") with the spec id, so an operator can find such a job.
package submitter

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Def is the submitter's row in the stage table.
func Def() stage.Def {
	return stage.Define(stage.Def{
		Name:      topology.StageSubmitter,
		Summary:   "creates the AMR jobs: per-host throttling budget shared by all replicas, SAS rules, a fresh AES key per job stored wrapped before the call",
		Uses:      stage.UsesSharePoint | stage.UsesStorage | stage.UsesKEK,
		Consumers: []string{topology.ConsumerSubmitter},
		Publishes: []string{topology.JobSubject("<jobID>"), topology.SubjectPlanSubmit},
	}, New)
}

// Config configures the submitter stage. SharePoint, the storage account (its manifest
// container and optional report queue) and -max-throttle-wait are the shared parts (pkg/stage).
type Config struct {
	// Plaintext turns job encryption off (flag -encrypt=false). The zero Config encrypts.
	Plaintext bool
	// KeyTTL is how long a job key stays usable (the wrapped key's expiry). Default
	// topology.KeyLifetime: as long as the job's manifests can exist, so no live job outlives it.
	KeyTTL time.Duration
	// Concurrency is how many specs are submitted at once. Default 4.
	Concurrency int
}

// RegisterFlags binds the configuration to flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(encryptFlag{&c.Plaintext}, "encrypt", "encrypt manifests and queue messages with a fresh AES-256 key per job (key-encryption key in "+keywrap.EnvKEK+")")
	fs.DurationVar(&c.KeyTTL, "key-ttl", flagenv.Or(c.KeyTTL, topology.KeyLifetime), "validity of a job's wrapped key (as long as its manifests can exist at SharePoint)")
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "specs submitted at once")
}

// encryptFlag is -encrypt, the negation of Config.Plaintext (so the zero Config encrypts).
type encryptFlag struct{ plaintext *bool }

func (f encryptFlag) String() string {
	return strconv.FormatBool(f.plaintext == nil || !*f.plaintext)
}

func (f encryptFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*f.plaintext = !v
	return nil
}

func (f encryptFlag) IsBoolFlag() bool { return true }

// Stage is the submitter.
type Stage struct {
	cfg     Config
	deps    stage.Deps
	account storage.Config // the manifest container and report queue
	log     *slog.Logger
	m       metrics
}

// New checks the configuration: the KEK unless -encrypt=false, a storage account with a manifest
// container, and a queue URL when a report queue is named.
func New(cfg Config, deps stage.Deps) (*Stage, error) {
	cfg.Concurrency = max(cfg.Concurrency, 1)
	cfg.KeyTTL = flagenv.Or(cfg.KeyTTL, topology.KeyLifetime)
	switch {
	case deps.SharePoint == nil:
		return nil, errors.New("submitter: no SharePoint client")
	case !cfg.Plaintext && deps.KEK == nil:
		return nil, fmt.Errorf("submitter: encryption is on (-encrypt) but %w", keywrap.ErrNoKEK)
	case deps.Storage == nil:
		return nil, fmt.Errorf("submitter: %w: need -storage-blob-url, -storage-account and %s", storage.ErrNotConfigured, storage.KeyEnv)
	}
	sc := deps.Storage.Config()
	switch {
	case sc.Container == "":
		return nil, errors.New("submitter: no manifest container (-manifest-container)")
	case sc.Queue != "" && sc.QueueURL == "":
		return nil, errors.New("submitter: -report-queue needs -storage-queue-url")
	}
	if err := topology.CheckToken(sc.Container); err != nil {
		return nil, fmt.Errorf("submitter: manifest container: %w", err)
	}
	s := &Stage{cfg: cfg, deps: deps, account: sc, log: deps.Logger()}
	var err error
	if s.m, err = newMetrics(deps.Runtime.Registry); err != nil {
		return nil, err
	}
	return s, nil
}

// Run handles specs until ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	return s.deps.Consume(ctx, stage.Consumer{Name: topology.ConsumerSubmitter, Handler: s.handle, Concurrency: s.cfg.Concurrency,
		OnDeadLetter: s.specDeadLettered})
}

// handle submits one spec (see the package documentation for the steps).
func (s *Stage) handle(ctx context.Context, msg jetstream.Msg) error {
	spec := &amrpipev1.JobSpec{}
	if err := bus.Decode(msg, spec); err != nil {
		return err
	}
	if err := checkSpec(spec); err != nil {
		return &bus.Permanent{Reason: sas.Redact(fmt.Sprintf("spec %q: %v", spec.GetSpecId(), err))}
	}
	log := s.log.With("spec_id", spec.GetSpecId(), "plan_id", spec.GetPlanId())
	done, err := s.deps.Jobs.Submission(ctx, spec.GetSpecId())
	if err != nil {
		return err
	}
	if done != nil {
		log.Info("spec submitted before; making sure it is recorded and announced")
		return s.announce(ctx, spec.GetSpecId(), done, log)
	}
	key, err := s.jobKey(ctx, spec.GetSpecId())
	if err != nil {
		return err
	}
	defer clear(key)
	req, err := s.request(ctx, spec, key)
	if err != nil {
		return err
	}
	info, err := s.create(ctx, spec, req, log)
	switch {
	case err == nil:
	case errors.Is(err, spo.ErrChangeTokenExpired) && spec.GetStartChangeToken() != "":
		log.Warn("SharePoint rejected the change token; re-planning the spec's lists in full", "err", err)
		s.m.replans.Inc()
		return s.settle(ctx, spec.GetSpecId(), &amrpipev1.Submission{
			Outcome: &amrpipev1.Submission_Replan{Replan: replan(spec, s.deps.Now())}}, log)
	default:
		return err
	}
	return s.settle(ctx, spec.GetSpecId(), &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Job{Job: &amrpipev1.SubmittedJob{
		JobId:       info.JobID,
		Spec:        spec,
		Container:   s.account.Container,
		Queue:       s.account.Queue,
		Encrypted:   key != nil,
		ChangeToken: info.CurrentChangeToken,
		Submitted:   timestamppb.New(s.deps.Now()),
	}}}, log)
}

// jobKey returns the spec's AES-256 key, stored wrapped before it is used: a fresh one, or the
// one an earlier attempt stored (SharePoint may have accepted that attempt). nil when plaintext.
func (s *Stage) jobKey(ctx context.Context, specID string) ([]byte, error) {
	if s.cfg.Plaintext {
		return nil, nil
	}
	key := make([]byte, keywrap.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("job key of spec %s: %w", specID, err)
	}
	now := s.deps.Now()
	w, err := s.deps.KEK.Wrap(specID, key, s.cfg.KeyTTL, now)
	if err != nil {
		clear(key)
		return nil, err
	}
	stored, created, err := s.deps.Jobs.PutKey(ctx, specID, w)
	if created {
		return key, nil
	}
	clear(key)
	if err != nil {
		return nil, err
	}
	if key, err = s.deps.KEK.Unwrap(specID, stored, now); err != nil {
		// The keywrap errors carry no key material.
		return nil, &bus.Permanent{Reason: fmt.Sprintf("the stored key of spec %s cannot be used: %v", specID, err)}
	}
	return key, nil
}

// request builds the create request: SAS URLs minted now and checked by SharePoint's rules.
func (s *Stage) request(ctx context.Context, spec *amrpipev1.JobSpec, key []byte) (spo.ReadJobRequest, error) {
	opts := spec.GetOptions()
	req := spo.ReadJobRequest{EncryptionKey: key, Options: spo.ReadOptions{
		IncludeVersions:              opts.GetIncludeVersions(),
		IncludeSecurity:              opts.GetIncludeSecurity(),
		IncludePermission:            opts.GetIncludePermission(),
		IncludeDirectDescendantsOnly: opts.GetIncludeDirectDescendantsOnly(),
		IncludeExtendedMetadata:      opts.GetIncludeExtendedMetadata(),
		StartChangeToken:             spec.GetStartChangeToken(),
	}}
	if !spec.GetMulti() {
		req.URL = spec.GetUrls()[0]
	}
	var err error
	if req.ManifestContainerURI, err = s.deps.Storage.ManifestSAS(ctx, s.account.Container); err != nil {
		return req, &bus.Retryable{Err: errors.New(sas.Redact(err.Error()))}
	}
	if err := sas.CheckManifestContainer(req.ManifestContainerURI); err != nil {
		return req, &bus.Permanent{Reason: "refusing to submit: " + sas.Redact(err.Error())}
	}
	if q := s.account.Queue; q != "" {
		if req.QueueURI, err = s.deps.Storage.ReportQueueSAS(ctx, q); err != nil {
			return req, &bus.Retryable{Err: errors.New(sas.Redact(err.Error()))}
		}
		if err := sas.CheckQueue(req.QueueURI); err != nil {
			return req, &bus.Permanent{Reason: "refusing to submit: " + sas.Redact(err.Error())}
		}
	}
	return req, nil
}

// create calls SharePoint through the tenant host's budget. Once a call is on its way it is not
// cancelled (a cancelled create may still have created a job): the call runs on a context
// detached from the handler's, bounded by the client's -sp-timeout.
func (s *Stage) create(ctx context.Context, spec *amrpipev1.JobSpec, req spo.ReadJobRequest, log *slog.Logger) (spo.ReadJobInfo, error) {
	method := "CreateSPAsyncReadJob"
	if spec.GetMulti() {
		method = "CreateSPAsyncReadJobWithMultiUrl"
	}
	sp := s.deps.SharePoint
	return stage.Call(ctx, sp, spec.GetSiteUrl(), func(ctx context.Context) (spo.ReadJobInfo, error) {
		cctx := context.WithoutCancel(ctx)
		log.Info("submitting spec", "method", method, "site", spec.GetSiteUrl(), "urls", len(spec.GetUrls()),
			"encrypted", len(req.EncryptionKey) > 0, "incremental", spec.GetStartChangeToken() != "")
		start := time.Now()
		var info spo.ReadJobInfo
		var err error
		if spec.GetMulti() {
			info, err = sp.Client.CreateSPAsyncReadJobWithMultiUrl(cctx, spec.GetSiteUrl(), spec.GetUrls(), req)
		} else {
			info, err = sp.Client.CreateSPAsyncReadJob(cctx, spec.GetSiteUrl(), req)
		}
		outcome := "accepted"
		if err != nil {
			outcome = stage.Verdict(err).Class.String()
		}
		s.m.create.WithLabelValues(method, outcome).Observe(time.Since(start).Seconds())
		if err != nil {
			log.Info("create call failed", "method", method, "class", outcome, "err", err)
			return info, err
		}
		log.Info("SharePoint accepted spec", "job_id", info.JobID, "method", method)
		s.m.submitted.WithLabelValues(method).Inc()
		return info, nil
	})
}

// settle stores the spec's outcome (create-once: an outcome stored meanwhile by another delivery
// wins), then records and announces it.
func (s *Stage) settle(ctx context.Context, specID string, sub *amrpipev1.Submission, log *slog.Logger) error {
	// The job exists now: the outcome must be stored even while the handler is being cancelled.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	won, err := s.store(sctx, specID, sub)
	if err != nil {
		log.Error("could not store the spec's outcome; its redelivery will create another job",
			"job_id", sub.GetJob().GetJobId(), "err", err)
		return err
	}
	if mine, theirs := sub.GetJob().GetJobId(), won.GetJob().GetJobId(); mine != "" && mine != theirs {
		log.Warn("another delivery of this spec stored its outcome first; this job is orphaned", "job_id", mine, "kept_job_id", theirs)
	}
	return s.announce(sctx, specID, won, log)
}

// store writes the outcome create-once, retrying briefly (losing it orphans a job), and
// returns the stored one.
func (s *Stage) store(ctx context.Context, specID string, sub *amrpipev1.Submission) (*amrpipev1.Submission, error) {
	for attempt := 0; ; attempt++ {
		won, err := s.deps.Jobs.PutSubmission(ctx, specID, sub)
		if err == nil {
			return won, nil
		}
		if attempt == 5 {
			return nil, err
		}
		if serr := backoff.Sleep(ctx, backoff.Delay(200*time.Millisecond, 5*time.Second, attempt)); serr != nil {
			return nil, fmt.Errorf("%w (last: %w)", serr, err)
		}
	}
}

// specDeadLettered is the submitter's dead-letter hook: a spec given up on (SharePoint refused
// the create call with a 500, the request cannot be made, retries ran out) is recorded as failed
// with the reason, so its plan shows itself incomplete (jobstore.PlanStatus) instead of just
// having one job fewer. An outcome stored before stands.
func (s *Stage) specDeadLettered(ctx context.Context, msg jetstream.Msg, reason string) error {
	spec := &amrpipev1.JobSpec{}
	if err := bus.Decode(msg, spec); err != nil || !specIDRE.MatchString(spec.GetSpecId()) {
		return nil // not a spec we can name: the dead letter is all there is to say
	}
	_, err := s.deps.Jobs.PutSubmission(ctx, spec.GetSpecId(), &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Failed{Failed: reason}})
	return err
}

// announce makes sure what a submission says has happened downstream: for a job, its JobRecord
// and SubmittedJob; for a re-plan, its PlanRequest.
func (s *Stage) announce(ctx context.Context, specID string, sub *amrpipev1.Submission, log *slog.Logger) error {
	if rp := sub.GetReplan(); rp != nil {
		if _, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.SubjectPlanSubmit, rp, "replan/"+specID); err != nil {
			return fmt.Errorf("publish re-plan %s: %w", rp.GetPlanId(), err)
		}
		log.Info("re-plan published", "replan_id", rp.GetPlanId())
		return nil
	}
	job := sub.GetJob()
	if sub.GetFailed() != "" {
		return &bus.Permanent{Reason: "the spec was given up on before: " + sub.GetFailed()}
	}
	if job == nil {
		return &bus.Permanent{Reason: "stored submission has no outcome"}
	}
	rec, err := s.deps.Jobs.Fire(ctx, job.GetJobId(), jobstore.Accepted(job))
	if err != nil {
		return err
	}
	// A record the relay moved on means it has the SubmittedJob already.
	if st := rec.GetState(); st != amrpipev1.JobState_JOB_STATE_UNSPECIFIED && st != amrpipev1.JobState_JOB_STATE_SUBMITTED {
		return nil
	}
	if _, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.JobSubject(job.GetJobId()), job, job.GetJobId()); err != nil {
		return fmt.Errorf("publish submitted job %s: %w", job.GetJobId(), err)
	}
	log.Info("job submitted", "job_id", job.GetJobId())
	return nil
}

// replan is the PlanRequest that reads an incremental spec's targets in full: the same site,
// targets (its scope, or its URLs) and options, incremental with its lists' tokens marked
// rejected, so those lists are read in full and their new tokens stored.
func replan(spec *amrpipev1.JobSpec, now time.Time) *amrpipev1.PlanRequest {
	targets := spec.GetScope()
	if len(targets) == 0 {
		targets = spec.GetUrls()
	}
	opts := proto.Clone(spec.GetOptions()).(*amrpipev1.ReadOptions)
	if opts == nil {
		opts = &amrpipev1.ReadOptions{}
	}
	opts.IncludeDirectDescendantsOnly, opts.IncludeSecurity = false, false
	lists := spec.GetListIds()
	if tl := spec.GetTokenListId(); tl != "" && !containsFold(lists, tl) {
		lists = append(lists, tl)
	}
	id := spec.GetSpecId()
	return &amrpipev1.PlanRequest{
		PlanId:             spec.GetPlanId() + "-replan-" + id[:min(16, len(id))],
		SiteUrl:            spec.GetSiteUrl(),
		Targets:            targets,
		Options:            opts,
		Incremental:        true,
		TokenRejectedLists: lists,
		Submitted:          timestamppb.New(now),
		Tenant:             spec.GetTenant(),
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if jobstore.TokenKey(v) == jobstore.TokenKey(s) {
			return true
		}
	}
	return false
}

// specIDRE: spec ids key the amr_keys and amr_submissions buckets and bind the wrapped key.
var specIDRE = regexp.MustCompile(`^[-_A-Za-z0-9]{1,128}$`)

// checkSpec refuses specs that cannot become a job.
func checkSpec(spec *amrpipev1.JobSpec) error {
	if !specIDRE.MatchString(spec.GetSpecId()) {
		return errors.New("spec id must be 1-128 letters, digits, '-' or '_'")
	}
	if err := topology.CheckToken(spec.GetPlanId()); err != nil {
		return fmt.Errorf("plan id: %w", err)
	}
	u, err := url.Parse(spec.GetSiteUrl())
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("site_url %q is not an absolute http(s) URL", spec.GetSiteUrl())
	}
	switch n := len(spec.GetUrls()); {
	case n == 0:
		return errors.New("no URLs")
	case n > 1 && !spec.GetMulti():
		return fmt.Errorf("%d URLs in a single-URL spec", n)
	case n > spo.MaxURLsPerJob:
		return fmt.Errorf("%d URLs; SharePoint takes at most %d per job", n, spo.MaxURLsPerJob)
	}
	return nil
}

type metrics struct {
	submitted *prometheus.CounterVec
	create    *prometheus.HistogramVec
	replans   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_submitter_jobs_submitted_total", Help: "AMR jobs SharePoint accepted, by create method.",
		}, []string{"method"}),
		create: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "amr_submitter_create_seconds", Help: "Latency of create calls, by method and class (accepted; throttled, retryable, permanent).",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 10), // 5 ms .. ~100 s
		}, []string{"method", "class"}),
		replans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amr_submitter_replans_total", Help: "Specs re-planned because SharePoint rejected their change token.",
		}),
	}
	for _, c := range []prometheus.Collector{m.submitted, m.create, m.replans} {
		if err := reg.Register(c); err != nil {
			return metrics{}, fmt.Errorf("submitter metrics: %w", err)
		}
	}
	return m, nil
}
