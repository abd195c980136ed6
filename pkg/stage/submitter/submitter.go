// Package submitter is the submitter stage: it turns each JobSpec (amr.specs.<planID>) into one
// SharePoint AMR job (CreateSPAsyncReadJob, or ...WithMultiUrl for a multi-URL spec), records it
// (JobRecord in amr_jobs) and announces it to the progress-relay (SubmittedJob on
// amr.jobs.submitted.<jobID>, Nats-Msg-Id the job id). Per spec:
//
//  1. Idempotency first: amr_submissions holds what became of the spec. A spec with an outcome
//     creates no job; its JobRecord and SubmittedJob (or re-plan) are made sure of again.
//  2. A claim before any call: the delivery stores a SpecClaim under the spec id by
//     compare-and-set. Another delivery of the spec (a plan redelivered past the specs stream's
//     2-minute duplicate window, a redelivery racing the first, another replica) waits while the
//     claim's lease runs, then reads the outcome.
//  3. Encryption (on by default): a fresh AES-256 key, wrapped under the KEK and stored
//     create-once under the spec id before SharePoint is called (SharePoint keeps no copy); a
//     stored, unexpired key is reused.
//  4. SAS URLs minted from the storage account and checked by SharePoint's rules (manifest
//     container Read+Write only, queue Add); a bad one is dead-lettered with the reason.
//  5. The create call, through the shared SharePoint caller (pkg/stage): paced by the tenant
//     host's throttling budget (a 429/503 Retry-After pauses every replica and the call is made
//     again: SharePoint refused it). Each call is first recorded on the claim (a CreateAttempt,
//     CALLING), by compare-and-set: only one delivery makes it. An answer that shows no job was
//     created (an error status other than 408, 502, 504; a request that never left) removes the
//     record; the verdict decides on the message.
//  6. A call whose outcome is unknown (no answer, 408, 502, 504, or a claim left CALLING by a
//     stopped submitter) is never made again blindly (the calls are not idempotent). It is
//     recorded AMBIGUOUS, the spec is marked for the sweeper (sweep.go), which looks for the job
//     in the manifest container (a job folder no record accounts for whose manifest decrypts with
//     the spec's key), and the message comes back every -reconcile-interval. A job found becomes
//     the spec's outcome. None within -reconcile-window: the spec is created once more; a second
//     unknown outcome ends the spec failed with the reason (dead-lettered, shown by plan status).
//     A job of the spec found after it got another outcome is an orphan: recorded, never
//     followed, its manifests deleted (DeleteMigrationJob is not documented for AMR jobs).
//  7. A change token SharePoint rejects (-2146232832) turns the spec into a re-plan: a
//     PlanRequest for its targets with its lists in token_rejected_lists (full read).
//  8. The outcome replaces the claim in amr_submissions (the attempts kept), the JobRecord is
//     written, the SubmittedJob published, and only then the spec acknowledged.
//
// Beside the specs, the janitor (sweep.go) deletes the manifest blobs of jobs done or failed for
// longer than -blob-retention: the container is the submitter's own.
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
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
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
	// ReconcileWindow is how long the job of a create call with an unknown outcome is looked for
	// in the manifest container before the spec is created once more (a second such call ends the
	// spec failed). SharePoint may keep a job queued for hours before it writes anything, so a
	// short window trades more orphan jobs (found later, their manifests deleted) for less
	// waiting. Default 1 hour.
	ReconcileWindow time.Duration
	// ReconcileInterval is how often a spec whose create call had an unknown outcome is looked at
	// again, and the manifest container searched for its job. Default 1 minute.
	ReconcileInterval time.Duration
	// OrphanWatch is how long after such a call the spec's key is tried on job folders nobody
	// knows, so a job that starts late is found and cleaned up as an orphan. Keep it below the key
	// bucket's TTL (7 days). Default 5 days.
	OrphanWatch time.Duration
	// BlobRetention is how long the manifest blobs of a job stay in the manifest container after
	// the job is done or failed; then the janitor deletes its "<jobID>/" folder. Default 24 hours.
	BlobRetention time.Duration
	// JanitorInterval is how often the janitor sweeps the manifest container; 0 turns it off
	// (flag default 10 minutes).
	JanitorInterval time.Duration
}

// Defaults of the reconciliation and the janitor.
const (
	DefaultReconcileWindow   = time.Hour
	DefaultReconcileInterval = time.Minute
	DefaultOrphanWatch       = 5 * 24 * time.Hour
	DefaultBlobRetention     = 24 * time.Hour
	DefaultJanitorInterval   = 10 * time.Minute
)

// RegisterFlags binds the configuration to flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(encryptFlag{&c.Plaintext}, "encrypt", "encrypt manifests and queue messages with a fresh AES-256 key per job (key-encryption key in "+keywrap.EnvKEK+")")
	fs.DurationVar(&c.KeyTTL, "key-ttl", flagenv.Or(c.KeyTTL, topology.KeyLifetime), "validity of a job's wrapped key (as long as its manifests can exist at SharePoint)")
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "specs submitted at once")
	fs.DurationVar(&c.ReconcileWindow, "reconcile-window", flagenv.Or(c.ReconcileWindow, DefaultReconcileWindow),
		"how long the job of a create call with an unknown outcome (timeout, 502, 504, lost connection) is looked for before the spec is created once more")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", flagenv.Or(c.ReconcileInterval, DefaultReconcileInterval),
		"how often such a spec is looked at again and the manifest container searched for its job")
	fs.DurationVar(&c.OrphanWatch, "orphan-watch", flagenv.Or(c.OrphanWatch, DefaultOrphanWatch),
		"how long after such a call a late job of the spec is looked for (then recorded as an orphan and its manifests deleted)")
	fs.DurationVar(&c.BlobRetention, "blob-retention", flagenv.Or(c.BlobRetention, DefaultBlobRetention),
		"how long a job's manifest blobs stay in the manifest container after the job is done or failed")
	if c.JanitorInterval == 0 {
		c.JanitorInterval = DefaultJanitorInterval
	}
	fs.DurationVar(&c.JanitorInterval, "janitor-interval", c.JanitorInterval, "how often the manifest container is swept for blobs past their retention (0: never)")
}

func (c *Config) defaults() {
	c.Concurrency = max(c.Concurrency, 1)
	c.KeyTTL = flagenv.Or(c.KeyTTL, topology.KeyLifetime)
	c.ReconcileWindow = flagenv.Or(c.ReconcileWindow, DefaultReconcileWindow)
	c.ReconcileInterval = flagenv.Or(c.ReconcileInterval, DefaultReconcileInterval)
	c.OrphanWatch = flagenv.Or(c.OrphanWatch, DefaultOrphanWatch)
	c.BlobRetention = flagenv.Or(c.BlobRetention, DefaultBlobRetention)
	c.JanitorInterval = max(c.JanitorInterval, 0)
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
	// sweepMu serialises sweeps; known caches job folders of the manifest container that have a
	// job record (both the sweeper's).
	sweepMu sync.Mutex
	known   map[string]struct{}
}

// New checks the configuration: the KEK unless -encrypt=false, a storage account with a manifest
// container, and a queue URL when a report queue is named.
func New(cfg Config, deps stage.Deps) (*Stage, error) {
	cfg.defaults()
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
	s := &Stage{cfg: cfg, deps: deps, account: sc, log: deps.Logger(), known: map[string]struct{}{}}
	var err error
	if s.m, err = newMetrics(deps.Runtime.Registry); err != nil {
		return nil, err
	}
	return s, nil
}

// Run handles specs until ctx ends; beside them the sweeper looks for the jobs of create calls
// with an unknown outcome and deletes manifest blobs past their retention.
func (s *Stage) Run(ctx context.Context) error {
	return stage.Group(ctx,
		func(ctx context.Context) error {
			return s.deps.Consume(ctx, stage.Consumer{Name: topology.ConsumerSubmitter, Handler: s.handle, Concurrency: s.cfg.Concurrency,
				OnDeadLetter: s.specDeadLettered})
		},
		s.sweeper)
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
	// AMR_JOBS drops its oldest message when full instead of refusing (message schedules need
	// it): a hand-off waits for room rather than push a live job's out.
	if err := bus.Room(ctx, s.deps.Runtime.JS, topology.StreamJobs, int64(proto.Size(job))); err != nil {
		return err
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
	submitted  *prometheus.CounterVec
	create     *prometheus.HistogramVec
	replans    prometheus.Counter
	ambiguous  prometheus.Counter
	reconciled *prometheus.CounterVec
	orphans    prometheus.Counter
	deleted    *prometheus.CounterVec
	unclaimed  prometheus.Gauge
	sweeps     *prometheus.CounterVec
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
		ambiguous: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amr_submitter_ambiguous_creates_total", Help: "Create calls whose outcome is unknown (timeout, 408, 502, 504, lost connection, a submitter stopped during the call).",
		}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_submitter_reconciled_total", Help: "Specs with a create call of unknown outcome, by what became of them: found (its job found in the manifest container), recreated (none found in the window), failed (given up).",
		}, []string{"outcome"}),
		orphans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amr_submitter_orphan_jobs_total", Help: "AMR jobs found in the manifest container for a spec that has another outcome: recorded, not followed, their manifests deleted.",
		}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_submitter_blobs_deleted_total", Help: "Manifest blobs the janitor deleted, by reason: retention (the job is done or failed for longer than -blob-retention), orphan.",
		}, []string{"reason"}),
		unclaimed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amr_submitter_unclaimed_job_folders", Help: "Folders of the manifest container no job record, spec or orphan mark accounts for, at the last sweep (left alone).",
		}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_submitter_sweeps_total", Help: "Sweeps of the manifest container, by kind (reconcile, janitor) and outcome (ok, error).",
		}, []string{"kind", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.submitted, m.create, m.replans, m.ambiguous, m.reconciled, m.orphans, m.deleted, m.unclaimed, m.sweeps} {
		if err := reg.Register(c); err != nil {
			return metrics{}, fmt.Errorf("submitter metrics: %w", err)
		}
	}
	return m, nil
}
