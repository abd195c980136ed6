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
//  4. The create call, paced by the tenant host's shared throttling budget (a 429/503
//     Retry-After pauses every replica; RateLimit-* headers slow calls before that); a pause
//     longer than -max-throttle-wait hands the message back (Nak with the pause as delay).
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
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Stage is the submitter's stage name: metrics label, failure counts, dead letters on
// amr.dlq.submitter.
const Stage = "submitter"

// Config configures the submitter stage.
type Config struct {
	// SP reaches SharePoint (secrets from the environment: spo.Config.LoadSecrets).
	SP spo.Config
	// Storage is the account SharePoint writes manifests (and queue messages) into; its key comes
	// from the environment (storage.Config.LoadKey). Container and Queue name the manifest
	// container and the optional report queue.
	Storage storage.Config
	// Plaintext turns job encryption off (flag -encrypt=false). The zero Config encrypts.
	Plaintext bool
	// KeyTTL is how long a job key stays usable (the wrapped key's expiry). Default 7 days.
	KeyTTL time.Duration
	// Concurrency is how many specs are submitted at once. Default 4.
	Concurrency int
	// MaxThrottleWait is the longest a handler waits for a paused host before handing its
	// message back with the remaining pause as delay. Default 20 s.
	MaxThrottleWait time.Duration
	// Retry is the policy of SharePoint calls; without a MaxDelay, throttle.DefaultPolicy.
	Retry throttle.Policy
}

// RegisterFlags binds the configuration to flags (SharePoint and storage included).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(encryptFlag{&c.Plaintext}, "encrypt", "encrypt manifests and queue messages with a fresh AES-256 key per job (key-encryption key in "+keywrap.EnvKEK+")")
	fs.DurationVar(&c.KeyTTL, "key-ttl", orDuration(c.KeyTTL, 7*24*time.Hour), "validity of a job's wrapped key")
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "specs submitted at once")
	fs.DurationVar(&c.MaxThrottleWait, "max-throttle-wait", orDuration(c.MaxThrottleWait, 20*time.Second),
		"longest wait for a throttled host inside a handler; longer pauses hand the message back")
	c.SP.RegisterFlags(fs)
	c.Storage.RegisterFlags(fs)
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

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Service is the submitter stage.
type Service struct {
	rt      *svc.Runtime
	cfg     Config
	log     *slog.Logger
	kek     *keywrap.KEK
	sp      *spo.Client
	account *storage.Account
	now     func() time.Time
	m       metrics

	// Bound by Run.
	budget *throttle.Paced
	jobs   *jobstore.Store
	subs   jetstream.KeyValue
}

// New builds the stage on rt: the storage account from cfg.Storage, the SharePoint client from
// cfg.SP and the metrics. kek wraps the job keys; it may be nil only with cfg.Plaintext. Run
// consumes.
func New(rt *svc.Runtime, cfg Config, kek *keywrap.KEK) (*Service, error) {
	cfg.Concurrency = max(cfg.Concurrency, 1)
	cfg.MaxThrottleWait = orDuration(cfg.MaxThrottleWait, 20*time.Second)
	cfg.KeyTTL = orDuration(cfg.KeyTTL, 7*24*time.Hour)
	if cfg.Retry.MaxDelay <= 0 {
		cfg.Retry = throttle.DefaultPolicy()
	}
	switch {
	case !cfg.Plaintext && kek == nil:
		return nil, fmt.Errorf("submitter: encryption is on (-encrypt) but %w", keywrap.ErrNoKEK)
	case cfg.Storage.Container == "":
		return nil, errors.New("submitter: no manifest container (-manifest-container)")
	case cfg.Storage.Queue != "" && cfg.Storage.QueueURL == "":
		return nil, errors.New("submitter: -report-queue needs -storage-queue-url")
	}
	if err := topology.CheckToken(cfg.Storage.Container); err != nil {
		return nil, fmt.Errorf("submitter: manifest container: %w", err)
	}
	account, err := storage.Open(cfg.Storage)
	if err != nil {
		return nil, fmt.Errorf("submitter: %w", err)
	}
	s := &Service{rt: rt, cfg: cfg, log: rt.Log, kek: kek, account: account, now: time.Now}
	if s.m, err = newMetrics(rt.Registry); err != nil {
		return nil, err
	}
	if s.sp, err = cfg.SP.NewClient(s.observe); err != nil {
		return nil, fmt.Errorf("submitter: sharepoint client: %w", err)
	}
	return s, nil
}

// observe counts throttled answers per host and lets the budget slow down on RateLimit headers.
func (s *Service) observe(o spo.Observation) {
	if o.Status == 429 || o.Status == 503 {
		s.m.throttled.WithLabelValues(o.Host).Inc()
	}
	if s.budget != nil {
		s.budget.Observe(o)
	}
}

// Run binds the buckets and the submitter consumer and handles specs until ctx ends. The
// topology must have been ensured (svc.Runtime.EnsureTopology).
func (s *Service) Run(ctx context.Context) error {
	js := s.rt.JS
	tkv, err := js.KeyValue(ctx, topology.BucketThrottle)
	if err != nil {
		return fmt.Errorf("bind bucket %s: %w", topology.BucketThrottle, err)
	}
	s.budget = throttle.NewPaced(throttle.NewKV(tkv, throttle.Clock{}), throttle.PacedOptions{
		MaxWait: s.cfg.MaxThrottleWait, Logger: s.log, OnWait: s.m.wait})
	if s.subs, err = js.KeyValue(ctx, topology.BucketSubmissions); err != nil {
		return fmt.Errorf("bind bucket %s: %w", topology.BucketSubmissions, err)
	}
	if s.jobs, err = jobstore.Open(ctx, js, s.now); err != nil {
		return err
	}
	cons, err := topology.BindConsumer(ctx, js, topology.ConsumerSubmitter)
	if err != nil {
		return err
	}
	o := s.rt.ConsumeOptions(Stage)
	o.Concurrency = s.cfg.Concurrency
	return bus.Consume(ctx, cons, s.handle, o)
}

// handle submits one spec (see the package documentation for the steps).
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) error {
	spec := &amrpipev1.JobSpec{}
	if err := bus.Decode(msg, spec); err != nil {
		return err
	}
	if err := checkSpec(spec); err != nil {
		return &bus.Permanent{Reason: sas.Redact(fmt.Sprintf("spec %q: %v", spec.GetSpecId(), err))}
	}
	log := s.log.With("spec_id", spec.GetSpecId(), "plan_id", spec.GetPlanId())
	done, err := s.submission(ctx, spec.GetSpecId())
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
			Outcome: &amrpipev1.Submission_Replan{Replan: replan(spec, s.now())}}, log)
	default:
		return classify(err)
	}
	return s.settle(ctx, spec.GetSpecId(), &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Job{Job: &amrpipev1.SubmittedJob{
		JobId:       info.JobID,
		Spec:        spec,
		Container:   s.cfg.Storage.Container,
		Queue:       s.cfg.Storage.Queue,
		Encrypted:   key != nil,
		ChangeToken: info.CurrentChangeToken,
		Submitted:   timestamppb.New(s.now()),
	}}}, log)
}

// submission returns what was stored for the spec, or nil.
func (s *Service) submission(ctx context.Context, specID string) (*amrpipev1.Submission, error) {
	e, err := s.subs.Get(ctx, specID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get submission of spec %s: %w", specID, err)
	}
	sub := &amrpipev1.Submission{}
	if err := proto.Unmarshal(e.Value(), sub); err != nil {
		return nil, fmt.Errorf("decode submission of spec %s: %w", specID, err)
	}
	return sub, nil
}

// jobKey returns the spec's AES-256 key, stored wrapped before it is used: a fresh one, or the
// one an earlier attempt stored (SharePoint may have accepted that attempt). nil when plaintext.
func (s *Service) jobKey(ctx context.Context, specID string) ([]byte, error) {
	if s.cfg.Plaintext {
		return nil, nil
	}
	key := make([]byte, keywrap.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("job key of spec %s: %w", specID, err)
	}
	now := s.now()
	w, err := s.kek.Wrap(specID, key, s.cfg.KeyTTL, now)
	if err != nil {
		clear(key)
		return nil, err
	}
	stored, created, err := s.jobs.PutKey(ctx, specID, w)
	if created {
		return key, nil
	}
	clear(key)
	if err != nil {
		return nil, err
	}
	if key, err = s.kek.Unwrap(specID, stored, now); err != nil {
		// The keywrap errors carry no key material.
		return nil, &bus.Permanent{Reason: fmt.Sprintf("the stored key of spec %s cannot be used: %v", specID, err)}
	}
	return key, nil
}

// request builds the create request: SAS URLs minted now and checked by SharePoint's rules.
func (s *Service) request(ctx context.Context, spec *amrpipev1.JobSpec, key []byte) (spo.ReadJobRequest, error) {
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
	if req.ManifestContainerURI, err = s.account.ManifestSAS(ctx, s.cfg.Storage.Container); err != nil {
		return req, &bus.Retryable{Err: errors.New(sas.Redact(err.Error()))}
	}
	if err := sas.CheckManifestContainer(req.ManifestContainerURI); err != nil {
		return req, &bus.Permanent{Reason: "refusing to submit: " + sas.Redact(err.Error())}
	}
	if q := s.cfg.Storage.Queue; q != "" {
		if req.QueueURI, err = s.account.ReportQueueSAS(ctx, q); err != nil {
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
func (s *Service) create(ctx context.Context, spec *amrpipev1.JobSpec, req spo.ReadJobRequest, log *slog.Logger) (spo.ReadJobInfo, error) {
	method := "CreateSPAsyncReadJob"
	if spec.GetMulti() {
		method = "CreateSPAsyncReadJobWithMultiUrl"
	}
	host := hostOf(spec.GetSiteUrl())
	return throttle.Do(ctx, s.budget, host, s.cfg.Retry, func(ctx context.Context) (spo.ReadJobInfo, error) {
		cctx := context.WithoutCancel(ctx)
		log.Info("submitting spec", "method", method, "site", spec.GetSiteUrl(), "urls", len(spec.GetUrls()),
			"encrypted", len(req.EncryptionKey) > 0, "incremental", spec.GetStartChangeToken() != "")
		start := time.Now()
		var info spo.ReadJobInfo
		var err error
		if spec.GetMulti() {
			info, err = s.sp.CreateSPAsyncReadJobWithMultiUrl(cctx, spec.GetSiteUrl(), spec.GetUrls(), req)
		} else {
			info, err = s.sp.CreateSPAsyncReadJob(cctx, spec.GetSiteUrl(), req)
		}
		s.m.create.WithLabelValues(method, spo.Classify(err).String()).Observe(time.Since(start).Seconds())
		if err != nil {
			log.Info("create call failed", "method", method, "class", spo.Classify(err).String(), "err", err)
			return info, err
		}
		log.Info("SharePoint accepted spec", "job_id", info.JobID, "method", method)
		s.m.submitted.WithLabelValues(method).Inc()
		return info, nil
	})
}

// settle stores the spec's outcome (create-once: an outcome stored meanwhile by another delivery
// wins), then records and announces it.
func (s *Service) settle(ctx context.Context, specID string, sub *amrpipev1.Submission, log *slog.Logger) error {
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
func (s *Service) store(ctx context.Context, specID string, sub *amrpipev1.Submission) (*amrpipev1.Submission, error) {
	data, err := proto.Marshal(sub)
	if err != nil {
		return nil, fmt.Errorf("encode submission of spec %s: %w", specID, err)
	}
	for attempt := 0; ; attempt++ {
		_, err = s.subs.Create(ctx, specID, data)
		if err == nil {
			return sub, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			won, gerr := s.submission(ctx, specID)
			if gerr == nil && won != nil {
				return won, nil
			}
			err = errors.Join(err, gerr)
		}
		if attempt == 5 {
			return nil, fmt.Errorf("store submission of spec %s: %w", specID, err)
		}
		if serr := throttle.Sleep(ctx, throttle.Backoff(200*time.Millisecond, 5*time.Second, attempt)); serr != nil {
			return nil, fmt.Errorf("store submission of spec %s: %w (last: %w)", specID, serr, err)
		}
	}
}

// announce makes sure what a submission says has happened downstream: for a job, its JobRecord
// and SubmittedJob; for a re-plan, its PlanRequest.
func (s *Service) announce(ctx context.Context, specID string, sub *amrpipev1.Submission, log *slog.Logger) error {
	if rp := sub.GetReplan(); rp != nil {
		if _, err := bus.Publish(ctx, s.rt.JS, topology.SubjectPlanSubmit, rp, "replan/"+specID); err != nil {
			return fmt.Errorf("publish re-plan %s: %w", rp.GetPlanId(), err)
		}
		log.Info("re-plan published", "replan_id", rp.GetPlanId())
		return nil
	}
	job := sub.GetJob()
	if job == nil {
		return &bus.Permanent{Reason: "stored submission has no outcome"}
	}
	rec, err := s.jobs.Update(ctx, job.GetJobId(), func(r *amrpipev1.JobRecord) error { return fill(r, job) })
	if err != nil {
		return err
	}
	// A record the relay moved on means it has the SubmittedJob already.
	if st := rec.GetState(); st != amrpipev1.JobState_JOB_STATE_UNSPECIFIED && st != amrpipev1.JobState_JOB_STATE_SUBMITTED {
		return nil
	}
	if _, err := bus.Publish(ctx, s.rt.JS, topology.JobSubject(job.GetJobId()), job, job.GetJobId()); err != nil {
		return fmt.Errorf("publish submitted job %s: %w", job.GetJobId(), err)
	}
	log.Info("job submitted", "job_id", job.GetJobId())
	return nil
}

// fill sets what the submitter knows of a job on its record, keeping what others wrote.
func fill(r *amrpipev1.JobRecord, job *amrpipev1.SubmittedJob) error {
	before := proto.Clone(r)
	if r.Spec == nil {
		r.Spec = job.GetSpec()
	}
	if r.State == amrpipev1.JobState_JOB_STATE_UNSPECIFIED {
		r.State = amrpipev1.JobState_JOB_STATE_SUBMITTED
	}
	if r.Container == "" {
		r.Container = job.GetContainer()
	}
	if r.Queue == "" {
		r.Queue = job.GetQueue()
	}
	if r.ChangeToken == "" {
		r.ChangeToken = job.GetChangeToken()
	}
	if r.Submitted == nil {
		r.Submitted = job.GetSubmitted()
	}
	if r.ExpectedObjects == 0 && job.GetSpec().GetExpectedItems() > 0 {
		r.ExpectedObjects = job.GetSpec().GetExpectedItems()
	}
	if proto.Equal(before, r) {
		return jobstore.ErrNoChange
	}
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

// classify turns what throttle.Do returns into what bus.Consume understands: a long pause of the
// host hands the message back for its length; a request the spo client refused to send (a bad
// URL, key or SAS) cannot succeed later. SharePoint's own errors are classified by bus.Classify.
func classify(err error) error {
	var lp *throttle.LongPause
	if errors.As(err, &lp) {
		return &bus.Throttled{RetryAfter: lp.Wait, Err: err}
	}
	if errors.Is(err, spo.ErrInvalidRequest) || errors.Is(err, sas.ErrNotSAS) || errors.Is(err, sas.ErrInvalidURL) {
		return &bus.Permanent{Reason: "SharePoint cannot take this request", Err: err}
	}
	return err
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

// hostOf is the host name of a URL: the throttling budget's key.
func hostOf(s string) string {
	if u, err := url.Parse(s); err == nil {
		return strings.ToLower(u.Hostname())
	}
	return ""
}

type metrics struct {
	submitted   *prometheus.CounterVec
	create      *prometheus.HistogramVec
	throttled   *prometheus.CounterVec
	waits       *prometheus.CounterVec
	waitSeconds *prometheus.CounterVec
	replans     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_submitter_jobs_submitted_total", Help: "AMR jobs SharePoint accepted, by create method.",
		}, []string{"method"}),
		create: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "amr_submitter_create_seconds", Help: "Latency of create calls, by method and class (none: accepted; throttled, retryable, permanent).",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 10), // 5 ms .. ~100 s
		}, []string{"method", "class"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_submitter_throttled_responses_total", Help: "429 and 503 answers from SharePoint, by host.",
		}, []string{"host"}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_submitter_throttle_waits_total",
			Help: "Calls that found their host paused, by host and outcome (waited: in the handler; deferred: handed back to JetStream).",
		}, []string{"host", "outcome"}),
		waitSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_submitter_throttle_wait_seconds_total", Help: "Time handlers waited for a paused host, by host.",
		}, []string{"host"}),
		replans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amr_submitter_replans_total", Help: "Specs re-planned because SharePoint rejected their change token.",
		}),
	}
	for _, c := range []prometheus.Collector{m.submitted, m.create, m.throttled, m.waits, m.waitSeconds, m.replans} {
		if err := reg.Register(c); err != nil {
			return metrics{}, fmt.Errorf("submitter metrics: %w", err)
		}
	}
	return m, nil
}

// wait records one wait of the budget (throttle.PacedOptions.OnWait).
func (m metrics) wait(host string, d time.Duration, deferred bool) {
	if deferred {
		m.waits.WithLabelValues(host, "deferred").Inc()
		return
	}
	m.waits.WithLabelValues(host, "waited").Inc()
	m.waitSeconds.WithLabelValues(host).Add(d.Seconds())
}
