// Package parser is the parser stage: it streams every decrypted package file of an AMR job
// (ManifestReady on amr.manifests.<jobID>, the file in object store amr_manifests) through
// pkg/sharepoint/manifest, applies the job's Emit policy, and publishes the records in RecordBatches on
// amr.records.<jobID>. When the job has ended (JobEnd, JobFatalError or JobCancelled on
// amr.events.<jobID>.*) and every announced file is parsed, it publishes the job's summary on
// amr.done.<jobID> (and, for a probe job, the folders it found on amr.plans.probe), and only then
// commits the job's change token and marks the job DONE.
//
// Exactly once, crash at any line:
//   - Batches have fixed boundaries (a record count and a byte bound, both from configuration)
//     and the message id "<jobID>/<file>/<batch>", so parsing a file again republishes the same
//     batches, which the stream's 2 h duplicate window drops.
//   - A file is acknowledged only after every batch is acknowledged, and is folded into the
//     JobRecord (files_parsed, records, counts, probe folders) with compare-and-set, once: a
//     file already listed is not counted again.
//   - The summary is published once: before publishing, the parser looks for a summary on
//     amr.done.<jobID> (the stream keeps it 30 days), and its message id is the job id, so two
//     replicas completing the job at the same moment publish one message. The change token is
//     stored after the summary, the state DONE after the token; each step is repeated harmlessly
//     by whoever finds the job not DONE yet.
//
// A file that cannot be parsed (unknown root element, XML syntax error, DOCTYPE, missing object),
// or whose retries ran out, is dead-lettered with the byte offset the parser reports, and the
// dead-letter hook records it in the JobRecord (files_failed, errors, last_error); the job's
// summary then says failed and lists the error, and its token is not committed. Batches published
// before the error stay on the stream: such a file has no batch with last=true.
package parser

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// Def is the parser's row in the stage table.
func Def() stage.Def {
	return stage.Define(stage.Def{
		Name:      topology.StageParser,
		Summary:   "streams package files into typed records, applies the job's emission policy, closes the job with its summary and commits its change token",
		Consumers: []string{topology.ConsumerParser, topology.ConsumerParserEnd},
		Publishes: []string{topology.RecordSubject("<jobID>"), topology.DoneSubject("<jobID>"), topology.SubjectPlanProbe},
	}, New)
}

// Defaults of Config.
const (
	DefaultBatchSize     = 256
	DefaultMaxBatchBytes = 768 << 10
	DefaultConcurrency   = 2
	DefaultMaxPending    = 64
	// payloadHeadroom is kept free of the server's max payload for headers and batch fields.
	payloadHeadroom = 8 << 10
)

// Config tunes the stage.
type Config struct {
	// Concurrency is how many package files are parsed at once (each keeps about two cores busy
	// with parsing and encoding). End events are handled with the same concurrency.
	Concurrency int
	// BatchSize is the most records per RecordBatch. Batch boundaries, and so message ids, follow
	// from it: change it only while no job is being parsed, or a file parsed again afterwards is
	// framed differently (consumers de-duplicating on records, not batches, are unaffected).
	BatchSize int
	// MaxBatchBytes bounds the encoded records of one batch; it is lowered to the server's max
	// payload less headroom. The same caution as BatchSize applies.
	MaxBatchBytes int
	// MaxPending bounds the batches of one file awaiting their acknowledgement.
	MaxPending int
	// KeepAlive is the InProgress interval while a file is parsed (0: a third of AckWait).
	KeepAlive time.Duration
	// StallTimeout is how long a job whose end was seen may wait for announced files without
	// changing before the watchdog fails those files and completes it.
	StallTimeout time.Duration
	// WatchInterval is how often the watchdog looks at the jobs.
	WatchInterval time.Duration
}

// RegisterFlags adds the stage's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.defaults()
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "package files parsed at once")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "records per RecordBatch (fixes batch boundaries and message ids; change only when idle)")
	fs.IntVar(&c.MaxBatchBytes, "max-batch-bytes", c.MaxBatchBytes, "encoded record bytes per RecordBatch at most (capped by the server's max payload)")
	fs.IntVar(&c.MaxPending, "max-pending", c.MaxPending, "record batches of one file awaiting acknowledgement at most")
	fs.DurationVar(&c.KeepAlive, "keepalive", c.KeepAlive, "InProgress interval while a file is parsed (0: a third of AckWait)")
	fs.DurationVar(&c.StallTimeout, "stall-timeout", c.StallTimeout, "a job whose end was seen and that waits this long for announced files without changing ends failed")
	fs.DurationVar(&c.WatchInterval, "watch-interval", c.WatchInterval, "how often the watchdog looks for stalled jobs")
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 2 * time.Hour
	}
	if c.WatchInterval <= 0 {
		c.WatchInterval = time.Minute
	}
}

// Stage is a parser.
type Stage struct {
	cfg      Config
	deps     stage.Deps
	store    *jobstore.Store
	now      func() time.Time
	objects  jetstream.ObjectStore // bound by Run
	done     jetstream.Stream      // bound by Run
	maxBytes int
	metrics  *metrics
	log      *slog.Logger
	tracer   trace.Tracer
}

// New builds the stage; Run binds the object store and the summary stream.
func New(cfg Config, deps stage.Deps) (*Stage, error) {
	cfg.defaults()
	s := &Stage{cfg: cfg, deps: deps, store: deps.Jobs, now: deps.Now, log: deps.Logger(),
		tracer: deps.Runtime.Tracer.Tracer("github.com/amrpipe/amrpipe/pkg/stage/parser"), maxBytes: cfg.MaxBatchBytes}
	if mp := int(deps.Runtime.Conn.MaxPayload()); mp > 0 { // 0 before the first connection
		s.maxBytes = min(s.maxBytes, mp-payloadHeadroom)
	}
	var err error
	if s.metrics, err = newMetrics(deps.Runtime.Registry); err != nil {
		return nil, fmt.Errorf("parser: %w", err)
	}
	return s, nil
}

// Run binds the object store and the summary stream, then consumes package files and job ends
// and watches for stalled jobs until ctx ends (then drains); the first part to fail stops the
// others. A file given up on for any reason is recorded as failed on its job (fileDeadLettered).
func (s *Stage) Run(ctx context.Context) error {
	err := s.deps.Runtime.Retry(ctx, "bind object store "+topology.ObjectManifests+" and stream "+topology.StreamDone,
		func(ctx context.Context) error {
			var err error
			if s.objects, err = s.deps.Runtime.JS.ObjectStore(ctx, topology.ObjectManifests); err != nil {
				return err
			}
			s.done, err = s.deps.Runtime.JS.Stream(ctx, topology.StreamDone)
			return err
		})
	if err != nil {
		return fmt.Errorf("parser: %w", err)
	}
	consume := func(c stage.Consumer) func(context.Context) error {
		c.Concurrency, c.KeepAlive = s.cfg.Concurrency, s.cfg.KeepAlive
		return func(ctx context.Context) error { return s.deps.Consume(ctx, c) }
	}
	return stage.Group(ctx,
		consume(stage.Consumer{Name: topology.ConsumerParser, Handler: s.handleManifest, OnDeadLetter: s.fileDeadLettered}),
		consume(stage.Consumer{Name: topology.ConsumerParserEnd, Handler: s.handleEnd}),
		s.watch)
}

func (s *Stage) span(ctx context.Context, name, jobID string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return s.tracer.Start(ctx, name, trace.WithAttributes(append(attrs, attribute.String("amr.job_id", jobID))...))
}

// errUnknownJob: a message of a job without a record (the submitter and the relay write it
// before anything reaches the parser, so this is a store hiccup or a foreign message).
var errUnknownJob = errors.New("no such job recorded")
