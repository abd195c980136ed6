// Package relay is the progress-relay stage: it follows every live AMR job through
// GetMigrationJobProgress (primary) and, when a report queue is configured, through the Azure
// Queue too, and publishes each distinct migration event of a job once on
// amr.events.<jobID>.<Event>, whichever source saw it first.
//
// Poll timers are JetStream message schedules (AMR_JOBS, consumer "progress-relay"): the submitter
// hands a job over on amr.jobs.submitted.<jobID>; each poll reads the pages after the job's saved
// cursor and, unless the job is over, publishes its next poll as a schedule on
// amr.jobs.schedule.<host>.<jobID>, which the server delivers on amr.jobs.due.<jobID> when it is
// due; only then is the delivery acknowledged. Nothing waits in the consumer's pending list, so the
// jobs followed are bounded by the stream, not by MaxAckPending, and no message outlives one poll
// interval. The pace follows the job's state (queued slowly, running about once a minute, less
// with the report queue, which brings ends forward), never faster than the tenant's budget
// (-tenant-polls-per-minute) shared by every replica, with jitter. Any replica takes any poll; all
// state is in JetStream (amr_cursors, amr_seen, amr_jobs, the schedules).
//
// Exactly once, crash at any line: the events of a page are first fired on the JobRecord as
// lifecycle transitions (idempotent), then each is checked in amr_seen, published with Nats-Msg-Id = its event id and
// only then marked seen; the cursor moves only after the whole page is published. A crash before
// the mark republishes, which the stream's 2 h duplicate window drops; amr_seen stops a
// duplicate that arrives later than that (the queue and the progress API can be hours apart).
package relay

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// Def is the progress-relay's row in the stage table.
func Def() stage.Def {
	return stage.Define(stage.Def{
		Name:      topology.StageRelay,
		Summary:   "follows every live AMR job through GetMigrationJobProgress and the report queue; publishes each distinct event once",
		Uses:      stage.UsesSharePoint | stage.UsesStorage | stage.UsesKEK,
		Consumers: []string{topology.ConsumerRelay},
		Publishes: []string{topology.EventSubject("<jobID>", "<Event>"), topology.ScheduleSubject("<host>", "<jobID>")},
	}, New)
}

// Config tunes the stage. Zero values take the defaults RegisterFlags shows, except
// StatusFallback, which is off when zero. The report queue itself is the storage flag
// -report-queue; throttling waits are the shared -max-throttle-wait.
type Config struct {
	// PollInterval is the wait between two polls of a running job (Microsoft advises about a
	// minute), and before the poll that confirms an end.
	PollInterval time.Duration
	// QueuedPollInterval is the wait between two polls of a job SharePoint has not started
	// (submitted, queued, postponed): nothing is exported meanwhile.
	QueuedPollInterval time.Duration
	// QueuePollInterval replaces PollInterval for running jobs when the report queue is read: its
	// events come at once, and a JobEnd there brings the next poll forward.
	QueuePollInterval time.Duration
	// TenantPollsPerMinute is the progress polls one SharePoint host gets per minute from every
	// replica together: with more live jobs than that allows, each is polled less often.
	TenantPollsPerMinute float64
	// MaxPages bounds the GetMigrationJobProgress pages read in one poll, so one busy job does not
	// hold a worker; the job is polled again at once (within the budget) when the bound is hit.
	MaxPages int
	// Concurrency is how many jobs are polled at once.
	Concurrency int
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

// RegisterFlags adds the stage's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.defaults()
	if c.StatusFallback == 0 {
		c.StatusFallback = time.Hour
	}
	fs.DurationVar(&c.PollInterval, "poll-interval", c.PollInterval, "wait between two GetMigrationJobProgress polls of a running job")
	fs.DurationVar(&c.QueuedPollInterval, "queued-poll-interval", c.QueuedPollInterval, "wait between two polls of a job SharePoint has not started (queued, postponed)")
	fs.DurationVar(&c.QueuePollInterval, "queue-poll-interval", c.QueuePollInterval, "wait between two polls of a running job when the report queue is read (its JobEnd brings the poll forward)")
	fs.Float64Var(&c.TenantPollsPerMinute, "tenant-polls-per-minute", c.TenantPollsPerMinute, "progress polls per minute for one SharePoint host, all replicas together (0: no budget)")
	fs.IntVar(&c.MaxPages, "max-pages", c.MaxPages, "progress pages read per poll before the job is handed back")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "jobs polled at once")
	fs.DurationVar(&c.NotFoundGrace, "not-found-grace", c.NotFoundGrace, "how long a just-submitted job SharePoint does not know yet is polled again before it fails")
	fs.DurationVar(&c.StatusFallback, "status-fallback", c.StatusFallback, "silence after which GetMigrationJobStatus None ends a job without JobEnd (0: off)")
	fs.DurationVar(&c.QueueInterval, "queue-interval", c.QueueInterval, "wait between two reads of an empty report queue")
	fs.DurationVar(&c.QueueVisibility, "queue-visibility", c.QueueVisibility, "visibility timeout of dequeued report-queue messages")
	fs.IntVar(&c.QueueMaxAttempts, "queue-max-attempts", c.QueueMaxAttempts, "reads of a message of an unrecorded job before it is dead-lettered")
}

// pace is the configured polling pace.
func (c *Config) pace() pace {
	return pace{running: c.PollInterval, queued: c.QueuedPollInterval, withQueue: c.QueuePollInterval, perMinute: c.TenantPollsPerMinute}
}

func (c *Config) defaults() {
	c.PollInterval = flagenv.Or(c.PollInterval, time.Minute)
	c.QueuedPollInterval = flagenv.Or(c.QueuedPollInterval, 5*time.Minute)
	c.QueuePollInterval = flagenv.Or(c.QueuePollInterval, 5*time.Minute)
	c.TenantPollsPerMinute = flagenv.Or(c.TenantPollsPerMinute, 300)
	c.NotFoundGrace = flagenv.Or(c.NotFoundGrace, 5*time.Minute)
	c.QueueInterval = flagenv.Or(c.QueueInterval, 8*time.Second)
	c.QueueVisibility = flagenv.Or(c.QueueVisibility, 30*time.Second)
	c.StatusFallback = max(c.StatusFallback, 0)
	c.MaxPages = flagenv.Or(c.MaxPages, 10)
	c.Concurrency = flagenv.Or(c.Concurrency, 16)
	c.QueueMaxAttempts = flagenv.Or(c.QueueMaxAttempts, 20)
}

// Stage is a progress-relay.
type Stage struct {
	cfg     Config
	deps    stage.Deps
	sp      *stage.SharePoint
	queue   string
	metrics *metrics
	log     *slog.Logger
	live    *liveJobs
	pages   pageSizes
	// refusedAt is when SharePoint last refused the relay's credentials (Unix ns; 0: never).
	refusedAt atomic.Int64
}

// New checks the configuration: a SharePoint caller is required, and the key-encryption key when
// a report queue is configured (its messages come in the jobs' envelopes).
func New(cfg Config, deps stage.Deps) (*Stage, error) {
	if deps.SharePoint == nil {
		return nil, errors.New("progress-relay: no SharePoint client")
	}
	cfg.defaults()
	s := &Stage{cfg: cfg, deps: deps, log: deps.Logger(), live: &liveJobs{refresh: 30 * time.Second},
		// A few quick in-poll retries of a transient failure; the next poll is the real retry.
		sp: deps.SharePoint.WithRetries(2, 5*time.Second)}
	if deps.Storage != nil {
		s.queue = deps.Storage.Config().Queue
	}
	if s.queue != "" && deps.KEK == nil {
		return nil, errors.New("progress-relay: the report queue needs the key-encryption key (" + keywrap.EnvKEK + ")")
	}
	var err error
	if s.metrics, err = newMetrics(deps.Runtime.Registry); err != nil {
		return nil, err
	}
	deps.Runtime.AddReadyCheck("sharepoint credentials", s.credentialsAccepted)
	return s, nil
}

// credentialsAccepted fails readiness for ten minutes after SharePoint refused the relay's
// credentials or permissions (401, 403, a refused token).
func (s *Stage) credentialsAccepted(context.Context) error {
	at := s.refusedAt.Load()
	if at != 0 && s.deps.Now().Sub(time.Unix(0, at)) < 10*time.Minute {
		return errors.New("SharePoint refused the relay's credentials at " + time.Unix(0, at).UTC().Format(time.RFC3339))
	}
	return nil
}

// Run polls jobs (and reads the report queue, when configured) until ctx ends, then drains. It
// returns when both have stopped; the first error stops the other.
func (s *Stage) Run(ctx context.Context) error {
	parts := []func(context.Context) error{func(ctx context.Context) error {
		return s.deps.Consume(ctx, stage.Consumer{Name: topology.ConsumerRelay, Handler: s.poll, Concurrency: s.cfg.Concurrency,
			OnDeadLetter: s.pollDeadLettered})
	}}
	if s.queue != "" {
		parts = append(parts, s.readQueue)
	}
	return stage.Group(ctx, parts...)
}
