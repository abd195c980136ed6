// Package relay is the progress-relay stage: it follows every live AMR job through
// GetMigrationJobProgress (primary) and, when a report queue is configured, through the Azure
// Queue too, and publishes each distinct migration event of a job once on
// amr.events.<jobID>.<Event>, whichever source saw it first.
//
// The poll timer is the job's SubmittedJob message itself (AMR_JOBS, consumer "relay"): each
// delivery reads the pages after the job's saved cursor, and the handler returns bus.Later with
// the poll interval until the job has ended, so JetStream redelivers it as the next poll. Any
// replica takes any poll; all state is in JetStream (amr_cursors, amr_seen, amr_jobs).
//
// Exactly once, crash at any line: the events of a page are first applied to the JobRecord
// (idempotently), then each is checked in amr_seen, published with Nats-Msg-Id = its event id and
// only then marked seen; the cursor moves only after the whole page is published. A crash before
// the mark republishes, which the stream's 2 h duplicate window drops; amr_seen stops a
// duplicate that arrives later than that (the queue and the progress API can be hours apart).
package relay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
)

// Stage names the stage in metrics, spans and its dead-letter subject amr.dlq.progress-relay.
const Stage = "progress-relay"

// Config tunes the stage. Zero values take the defaults RegisterFlags shows, except
// StatusFallback, which is off when zero.
type Config struct {
	// PollInterval is the wait between two polls of a live job (Microsoft advises about a minute).
	PollInterval time.Duration
	// MaxPages bounds the GetMigrationJobProgress pages read in one poll, so one busy job does not
	// hold a worker; the job is polled again at once when the bound is hit.
	MaxPages int
	// Concurrency is how many jobs are polled at once.
	Concurrency int
	// ThrottleMaxWait is the longest throttling pause a poll sits through; a longer one hands the
	// message back to JetStream with the remaining pause as its delay.
	ThrottleMaxWait time.Duration
	// NotFoundGrace is how long after submission a job SharePoint does not know yet (and that never
	// produced an event) is polled again rather than failed.
	NotFoundGrace time.Duration
	// StatusFallback: a job without a new event for this long is asked GetMigrationJobStatus; None
	// (unknown, or finished and removed) ends it as failed without JobEnd. Zero turns it off (the
	// flag's default is an hour).
	StatusFallback time.Duration
	// QueueInterval is the wait between two reads of an empty report queue.
	QueueInterval time.Duration
	// QueueVisibility is how long a dequeued message stays hidden before it reappears (when it was
	// neither relayed nor dead-lettered, e.g. its job is not recorded yet).
	QueueVisibility time.Duration
	// QueueMaxAttempts is how many times a message of a job nobody recorded is left in the queue
	// before it is dead-lettered and deleted.
	QueueMaxAttempts int
}

// RegisterFlags adds the stage's flags (the report queue itself is the storage flag -report-queue).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.defaults()
	if c.StatusFallback == 0 {
		c.StatusFallback = time.Hour
	}
	fs.DurationVar(&c.PollInterval, "poll-interval", c.PollInterval, "wait between two GetMigrationJobProgress polls of a live job")
	fs.IntVar(&c.MaxPages, "max-pages", c.MaxPages, "progress pages read per poll before the job is handed back")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "jobs polled at once")
	fs.DurationVar(&c.ThrottleMaxWait, "throttle-max-wait", c.ThrottleMaxWait, "longest throttling pause a poll waits through; longer ones are handed back to JetStream")
	fs.DurationVar(&c.NotFoundGrace, "not-found-grace", c.NotFoundGrace, "how long a just-submitted job SharePoint does not know yet is polled again before it fails")
	fs.DurationVar(&c.StatusFallback, "status-fallback", c.StatusFallback, "silence after which GetMigrationJobStatus None ends a job without JobEnd (0: off)")
	fs.DurationVar(&c.QueueInterval, "queue-interval", c.QueueInterval, "wait between two reads of an empty report queue")
	fs.DurationVar(&c.QueueVisibility, "queue-visibility", c.QueueVisibility, "visibility timeout of dequeued report-queue messages")
	fs.IntVar(&c.QueueMaxAttempts, "queue-max-attempts", c.QueueMaxAttempts, "reads of a message of an unrecorded job before it is dead-lettered")
}

func (c *Config) defaults() {
	orDuration(&c.PollInterval, time.Minute)
	orDuration(&c.ThrottleMaxWait, 5*time.Second)
	orDuration(&c.NotFoundGrace, 5*time.Minute)
	orDuration(&c.QueueInterval, 8*time.Second)
	orDuration(&c.QueueVisibility, 30*time.Second)
	c.StatusFallback = max(c.StatusFallback, 0)
	if c.MaxPages <= 0 {
		c.MaxPages = 50
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.QueueMaxAttempts <= 0 {
		c.QueueMaxAttempts = 20
	}
}

func orDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Deps are what the stage talks to besides JetStream.
type Deps struct {
	// SharePoint is the client of the tenant (or the simulator). Required.
	SharePoint *spo.Client
	// Storage is the storage account; with a report queue configured (its Config().Queue) the
	// queue is read too. Optional.
	Storage *storage.Account
	// KEK unwraps job keys for encrypted queue envelopes; required with a report queue.
	KEK *keywrap.KEK
	// Store is the job store; nil opens one on the runtime's JetStream.
	Store *jobstore.Store
	// Budget is the per-host throttling budget; nil uses the shared amr_throttle bucket.
	Budget throttle.Budget
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Service is a running progress-relay.
type Service struct {
	rt      *svc.Runtime
	cfg     Config
	deps    Deps
	queue   string
	budget  throttle.Budget
	policy  throttle.Policy
	metrics *metrics
	log     *slog.Logger
}

// New checks the configuration and binds the buckets; the runtime's topology must be ensured.
func New(rt *svc.Runtime, cfg Config, deps Deps) (*Service, error) {
	if deps.SharePoint == nil {
		return nil, errors.New("progress-relay: no SharePoint client")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	cfg.defaults()
	s := &Service{rt: rt, cfg: cfg, deps: deps, log: rt.Log.With("stage", Stage)}
	if deps.Storage != nil {
		s.queue = deps.Storage.Config().Queue
	}
	if s.queue != "" && deps.KEK == nil {
		return nil, errors.New("progress-relay: the report queue needs the key-encryption key (" + keywrap.EnvKEK + ")")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.deps.Store == nil {
		st, err := jobstore.Open(ctx, rt.JS, deps.Now)
		if err != nil {
			return nil, fmt.Errorf("progress-relay: %w", err)
		}
		s.deps.Store = st
	}
	budget := deps.Budget
	if budget == nil {
		kv, err := rt.JS.KeyValue(ctx, topology.BucketThrottle)
		if err != nil {
			return nil, fmt.Errorf("progress-relay: bind bucket %s: %w", topology.BucketThrottle, err)
		}
		budget = throttle.NewKV(kv, throttle.Clock{Now: deps.Now})
	}
	s.budget = yieldingBudget{Budget: budget, maxWait: cfg.ThrottleMaxWait, now: deps.Now}
	// A few quick in-poll retries of a transient failure; the next poll is the real retry.
	s.policy = throttle.Policy{MaxRetries: 2, BaseDelay: 500 * time.Millisecond, MaxDelay: 5 * time.Second,
		DefaultRetryAfter: 10 * time.Second, Clock: throttle.Clock{Now: deps.Now}}
	var err error
	if s.metrics, err = newMetrics(rt.Registry); err != nil {
		return nil, fmt.Errorf("progress-relay: %w", err)
	}
	return s, nil
}

// Run polls jobs (and reads the report queue, when configured) until ctx ends, then drains. It
// returns when both have stopped; the first error stops the other.
func (s *Service) Run(ctx context.Context) error {
	cons, err := topology.BindConsumer(ctx, s.rt.JS, topology.ConsumerRelay)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	parts := 1
	go func() {
		o := s.rt.ConsumeOptions(Stage)
		o.Concurrency = s.cfg.Concurrency
		errs <- bus.Consume(ctx, cons, s.poll, o)
	}()
	if s.queue != "" {
		parts++
		go func() { errs <- s.readQueue(ctx) }()
	}
	var first error
	for range parts {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
		cancel() // either part stopping stops the other
	}
	return first
}
