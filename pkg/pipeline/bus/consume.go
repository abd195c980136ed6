package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// Handler processes one message. It decodes the payload itself and must not settle the message
// (Ack, Nak, Term): Consume does, from the error it returns (see Classify).
type Handler func(ctx context.Context, msg jetstream.Msg) error

// ConsumeOptions configures Consume. Stage and JS are required.
type ConsumeOptions struct {
	// Stage names the stage in spans, metrics, failure counts and the dead-letter subject
	// amr.dlq.<Stage>; a subject token such as "decryptor".
	Stage string
	// JS publishes dead letters and reaches the failure-count bucket.
	JS jetstream.JetStream
	// Concurrency is how many handlers run at once. Default 1.
	Concurrency int
	// Prefetch is how many messages the client buffers ahead of the handlers. Default
	// Concurrency; keep it small for slow handlers, because a buffered message's AckWait runs.
	Prefetch int
	// MaxFailures is the number of non-throttled failures after which a message is dead-lettered.
	// Default topology.MaxFailures.
	MaxFailures int
	// BaseDelay and MaxDelay shape the back-off of retryable failures. Default 1 s and 5 min.
	BaseDelay, MaxDelay time.Duration
	// DefaultRetryAfter is the delay of a throttled failure that named none. Default 10 s.
	DefaultRetryAfter time.Duration
	// ThrottleBudget is how long after its publication a message may be throttled without
	// counting: past it a throttled try counts as a failure (waiting at least what the service
	// asked), so a storm that never ends dead-letters the message instead of hanging it. Zero
	// waits throttling out forever.
	ThrottleBudget time.Duration
	// DrainTimeout bounds how long in-flight handlers may run on after ctx ends before their
	// context is cancelled too. Default 30 s.
	DrainTimeout time.Duration
	// KeepAlive is the interval of InProgress while a handler runs: 0 means a third of the
	// consumer's AckWait, a negative value turns it off.
	KeepAlive time.Duration
	// FastAck acknowledges without waiting for the server's confirmation. Leave it off where a
	// lost Ack would redo expensive work; a lost Ack only ever causes a redelivery.
	FastAck bool
	// LagInterval is how often the consumer's pending counts are sampled into Metrics. Default 15 s.
	LagInterval time.Duration
	// Metrics receives the stage's counters; nil records nothing.
	Metrics *Metrics
	// TracerProvider makes the per-message spans; nil uses otel's global provider.
	TracerProvider trace.TracerProvider
	// Logger logs settlement trouble; nil uses slog.Default().
	Logger *slog.Logger
	// Classify turns a handler's error into a verdict; nil is the bus's own Classify. The stages
	// pass their one translation of SharePoint, Azure and throttling errors (pkg/stage).
	Classify func(error) Verdict
	// HandlerTimeout is the deadline of one handler: its context ends then, and a handler that
	// has not returned StuckGrace later is given up on (its message is handed back as a counted
	// failure, the handler counted in Stuck until it returns). Zero: no deadline.
	HandlerTimeout time.Duration
	// StuckGrace is how long a handler may run on after its deadline. Default 30 s.
	StuckGrace time.Duration
	// Stuck, if set, counts the handlers given up on that are still running (the runtime's
	// readiness reads it).
	Stuck *atomic.Int64
	// MaxUnsettled is how many deliveries in a row may end without the message being settled
	// (the handler crashed the process, hung past its deadline, or lost its connection) before
	// the message is dead-lettered without running the handler again. Default
	// topology.MaxUnsettled; negative turns the check off.
	MaxUnsettled int
	// OnDeadLetter, if set, runs before every dead letter, whatever the cause (a permanent
	// error, retries exhausted), with the reason the dead letter will carry: the stage ends what
	// the message belonged to (marks its file failed, ends its job). It must be idempotent. When
	// it fails the message is handed back (Nak after MaxDelay) rather than dead-lettered without
	// its consequence.
	OnDeadLetter func(ctx context.Context, msg jetstream.Msg, reason string) error
}

func (o ConsumeOptions) withDefaults(cons jetstream.Consumer) (ConsumeOptions, error) {
	if err := topology.CheckToken(o.Stage); err != nil {
		return o, fmt.Errorf("stage: %w", err)
	}
	if o.JS == nil {
		return o, errors.New("consume: no JetStream handle")
	}
	o.Concurrency = max(o.Concurrency, 1)
	if o.Prefetch <= 0 {
		o.Prefetch = o.Concurrency
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = topology.MaxFailures
	}
	o.BaseDelay = flagenv.Or(o.BaseDelay, time.Second)
	o.MaxDelay = flagenv.Or(o.MaxDelay, 5*time.Minute)
	o.DefaultRetryAfter = flagenv.Or(o.DefaultRetryAfter, 10*time.Second)
	o.DrainTimeout = flagenv.Or(o.DrainTimeout, 30*time.Second)
	o.LagInterval = flagenv.Or(o.LagInterval, 15*time.Second)
	o.StuckGrace = flagenv.Or(o.StuckGrace, 30*time.Second)
	if o.MaxUnsettled == 0 {
		o.MaxUnsettled = topology.MaxUnsettled
	}
	if o.KeepAlive == 0 {
		if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
			o.KeepAlive = info.Config.AckWait / 3
		} else {
			o.KeepAlive = 10 * time.Second
		}
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Classify == nil {
		o.Classify = Classify
	}
	o.Logger = o.Logger.With("stage", o.Stage)
	return o, nil
}

// settleTimeout bounds the Ack, Nak, Term and dead-letter calls, which run even while draining.
const settleTimeout = 10 * time.Second

// pullExpiry and pullHeartbeat shape the pull requests: a pull request lives on the consumer's
// leader, so when that server dies the client only learns it from missing heartbeats (two of
// them) and pulls again from the new leader. The client's defaults (30 s, 15 s) paused a stage
// 30 s after every leader change; these cost one small request every 10 s per idle consumer.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// BackpressureBase and BackpressureMax space the tries of a message whose handler met a full
// store (Verdict.Backpressure): 2 s doubling with each delivery up to 1 min, so a short burst
// resumes quickly and a long stall costs one try a minute per waiting message.
const (
	BackpressureBase = 2 * time.Second
	BackpressureMax  = time.Minute
)

// Consume pull-consumes from cons and runs handler on each message with o.Concurrency
// handlers at a time, until ctx ends or the consumer goes away. Each message gets a span (a
// child of the publisher's trace context) and is settled from the handler's error:
//
//   - nil: Ack (DoubleAck unless FastAck).
//   - Throttled: NakWithDelay(RetryAfter); not counted as a failure. A full store of ours
//     (Full) is throttled too, waited out with a growing delay and no ThrottleBudget.
//   - Later: NakWithDelay(After); not a failure.
//   - Retryable: counted in the amr_failures bucket, then NakWithDelay with exponential
//     back-off, or OnDeadLetter, Term and dead letter once MaxFailures is reached.
//   - Permanent: OnDeadLetter, Term and dead letter to amr.dlq.<Stage>.
//
// o.Classify decides the class of an error (the bus's own Classify when nil).
//
// The consumer's own MaxDeliver is unlimited (topology); the failure count replaces it because
// JetStream counts every delivery, throttled or not. A redelivery after a crash (AckWait expired)
// is not a failure either: replicas may be killed at any time without using up a message's tries.
//
// When ctx ends Consume stops fetching, Naks buffered messages so another replica takes them
// at once, lets in-flight handlers finish for up to DrainTimeout (then cancels their context), and
// returns nil. A handler panic is recovered and counted as a retryable failure.
func Consume(ctx context.Context, cons jetstream.Consumer, handler Handler, o ConsumeOptions) error {
	o, err := o.withDefaults(cons)
	if err != nil {
		return err
	}
	failures, err := bindFailures(ctx, o.JS, o.Logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(o.Prefetch), jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return fmt.Errorf("consume %s: %w", o.Stage, err)
	}
	defer it.Stop()

	// Handlers outlive ctx by up to DrainTimeout so that work in flight can finish.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	var drainTimer *time.Timer
	var timerMu sync.Mutex
	stopDrain := context.AfterFunc(ctx, func() {
		it.Drain()
		timerMu.Lock()
		drainTimer = time.AfterFunc(o.DrainTimeout, hcancel)
		timerMu.Unlock()
	})
	defer func() {
		stopDrain()
		timerMu.Lock()
		if drainTimer != nil {
			drainTimer.Stop()
		}
		timerMu.Unlock()
	}()

	c := &consumer{o: o, failures: failures, handler: handler, stopping: ctx,
		tracer: o.TracerProvider.Tracer(tracerName)}
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); c.sampleLag(lagCtx, cons) }()
	defer func() { stopLag(); <-lagDone }()

	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	var runErr error
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if ctx.Err() == nil {
					runErr = fmt.Errorf("consume %s: %w", o.Stage, err)
				}
				break
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				runErr = fmt.Errorf("consume %s: %w", o.Stage, err)
				break
			}
			o.Logger.Warn("fetch", "err", err)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			c.requeue(msg)
			continue
		}
		if ctx.Err() != nil { // both were ready and the slot won
			<-sem
			c.requeue(msg)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.process(hctx, msg)
		}()
	}
	if err := waitBounded(&wg, o.DrainTimeout+settleTimeout); err != nil {
		return errors.Join(runErr, fmt.Errorf("consume %s: %w", o.Stage, err))
	}
	return runErr
}

// waitBounded waits for wg, giving up after d (a handler that ignores its context).
func waitBounded(wg *sync.WaitGroup, d time.Duration) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("handlers still running %s after shutdown", d)
	}
}

type consumer struct {
	o        ConsumeOptions
	failures failureCounter
	handler  Handler
	tracer   trace.Tracer
	stopping context.Context // done once Consume is draining
}

// process runs the handler on one message and settles it.
func (c *consumer) process(hctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil { // not a JetStream delivery; nothing to settle against
		c.o.Logger.Error("message metadata", "subject", msg.Subject(), "err", err)
		return
	}
	ctx, span := c.tracer.Start(ExtractTrace(hctx, msg.Headers()), c.o.Stage+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			messagingSystem,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(msg.Subject()),
			semconv.MessagingConsumerGroupName(meta.Consumer),
			semconv.MessagingMessageID(msg.Headers().Get(jetstream.MsgIDHeader)),
			attribute.Int64("amr.stream.sequence", int64(meta.Sequence.Stream)),
			attribute.Int64("amr.deliveries", int64(meta.NumDelivered)),
		))
	defer span.End()

	log := c.o.Logger.With("subject", msg.Subject(), "seq", meta.Sequence.Stream, "deliveries", meta.NumDelivered)
	unsettled, poisoned := c.countUnsettled(ctx, meta, log)
	if poisoned != "" {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		c.settle(sctx, msg, meta, Verdict{Class: ClassPermanent, Reason: poisoned}, nil)
		return
	}
	c.o.Metrics.inFlight(c.o.Stage, 1)
	stopKeepAlive := func() {}
	if c.o.KeepAlive > 0 {
		stopKeepAlive = KeepAlive(ctx, msg, c.o.KeepAlive)
	}
	start := time.Now()
	err = c.callWithDeadline(ctx, msg, log)
	stopKeepAlive()
	c.o.Metrics.observe(c.o.Stage, time.Since(start))
	c.o.Metrics.inFlight(c.o.Stage, -1)
	if unsettled != "" {
		defer c.failures.clear(context.WithoutCancel(ctx), unsettled, log) // settled, one way or the other
	}

	v := c.o.Classify(err)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, v.Class.String())
	}
	if v.Class != ClassAck && c.stopping.Err() != nil && hctx.Err() != nil {
		// The drain deadline cut the handler short: not the message's fault.
		c.requeue(msg)
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	c.settle(sctx, msg, meta, v, err)
}

// countUnsettled counts a redelivery in the failures bucket until the delivery is settled
// (process clears the key): a count that keeps growing means deliveries that ended without
// settlement (the handler crashed the process, or its connection closed). It returns the key to
// clear, and the dead-letter reason once the count passes MaxUnsettled. Failing to count only
// loses the check for this delivery.
func (c *consumer) countUnsettled(ctx context.Context, meta *jetstream.MsgMetadata, log *slog.Logger) (key, poisoned string) {
	if meta.NumDelivered <= 1 || c.o.MaxUnsettled < 0 {
		return "", ""
	}
	key = "unsettled." + failureKey(c.o.Stage, meta)
	n, err := c.failures.incr(ctx, key)
	if err != nil {
		log.Warn("count unsettled deliveries", "err", err)
		return "", ""
	}
	// n counts this delivery and the redeliveries before it that never settled (the first
	// delivery is not counted, so as to cost nothing on the happy path: n is at most one more
	// than the deliveries that ended unsettled).
	if n >= c.o.MaxUnsettled {
		return key, fmt.Sprintf("delivered %d times in a row without being settled: its handler crashed, hung or lost its connection each time", n)
	}
	return key, ""
}

// callWithDeadline runs the handler under HandlerTimeout. A handler that ignores its context
// past the deadline is left to finish on its own (counted in Stuck, and in /readyz) and its
// message handed back as a failure, so one hung download or read cannot hold a message forever.
//
// The handler's context is cancelled at the deadline rather than given one: the NATS client
// bounds a JetStream request or publish by its default timeout only under a context without a
// deadline, and a request lost while a cluster's leader changes must cost that timeout, not the
// rest of the handler's deadline.
func (c *consumer) callWithDeadline(ctx context.Context, msg jetstream.Msg, log *slog.Logger) error {
	if c.o.HandlerTimeout <= 0 {
		return c.call(ctx, msg)
	}
	hctx, cancel := context.WithCancelCause(ctx)
	deadline := time.AfterFunc(c.o.HandlerTimeout, func() {
		cancel(fmt.Errorf("handler deadline of %s: %w", c.o.HandlerTimeout, context.DeadlineExceeded))
	})
	done := make(chan error, 1)
	go func() {
		defer cancel(nil)
		defer deadline.Stop()
		done <- c.call(hctx, msg)
	}()
	t := time.NewTimer(c.o.HandlerTimeout + c.o.StuckGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	c.stuck(1)
	log.Error("handler stuck past its deadline; message handed back", "deadline", c.o.HandlerTimeout.String())
	go func() {
		<-done
		c.stuck(-1)
	}()
	return &Retryable{Err: fmt.Errorf("handler still running %s after its %s deadline", c.o.StuckGrace, c.o.HandlerTimeout)}
}

func (c *consumer) stuck(delta int64) {
	if c.o.Stuck != nil {
		c.o.Stuck.Add(delta)
	}
	c.o.Metrics.stuckHandlers(c.o.Stage, delta)
}

// call runs the handler, turning a panic into a retryable failure.
func (c *consumer) call(ctx context.Context, msg jetstream.Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.o.Logger.Error("handler panic", "subject", msg.Subject(), "panic", r, "stack", string(debug.Stack()))
			err = &Retryable{Err: fmt.Errorf("handler panic: %v", r)}
		}
	}()
	return c.handler(ctx, msg)
}

func (c *consumer) settle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, v Verdict, herr error) {
	log := c.o.Logger.With("subject", msg.Subject(), "seq", meta.Sequence.Stream, "deliveries", meta.NumDelivered)
	key := failureKey(c.o.Stage, meta)
	var err error
	outcome := v.Class.String()
	switch v.Class {
	case ClassAck:
		if meta.NumDelivered > 1 {
			c.failures.clear(ctx, key, log)
		}
		if c.o.FastAck {
			err = msg.Ack()
		} else {
			err = msg.DoubleAck(ctx)
		}
	case ClassThrottled:
		if v.Backpressure {
			err = msg.NakWithDelay(max(v.Delay, backoff.Delay(BackpressureBase, BackpressureMax, int(meta.NumDelivered)-1)))
			break
		}
		if c.o.ThrottleBudget <= 0 || time.Since(meta.Timestamp) <= c.o.ThrottleBudget {
			err = msg.NakWithDelay(flagenv.Or(v.Delay, c.o.DefaultRetryAfter))
			break
		}
		herr = fmt.Errorf("throttled %s after publication: %w", time.Since(meta.Timestamp).Round(time.Second), herr)
		outcome, err = c.countFailure(ctx, msg, meta, key, v.Delay, herr, log)
	case ClassLater:
		err = msg.NakWithDelay(max(v.Delay, 0))
	case ClassRetryable:
		outcome, err = c.countFailure(ctx, msg, meta, key, 0, herr, log)
	case ClassPermanent:
		outcome, err = c.deadLetter(ctx, msg, meta, v.Reason, log)
	}
	if err != nil {
		log.Warn("settle", "outcome", outcome, "err", err)
		outcome = "settle_error"
	}
	c.o.Metrics.count(c.o.Stage, outcome)
}

// countFailure counts a failed try: the message comes back after the back-off (or the wait
// asked for, if longer) until MaxFailures, then it is dead-lettered.
func (c *consumer) countFailure(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, key string, wait time.Duration, herr error, log *slog.Logger) (string, error) {
	n, cerr := c.failures.incr(ctx, key)
	if cerr != nil {
		// Without the count, retry rather than guess: a dead letter is not undone.
		log.Warn("count failure", "err", cerr)
		n = int(min(meta.NumDelivered, uint64(c.o.MaxFailures-1)))
	}
	if n < c.o.MaxFailures {
		log.Info("retry", "failures", n, "err", herr)
		return ClassRetryable.String(), msg.NakWithDelay(max(wait, backoff.Delay(c.o.BaseDelay, c.o.MaxDelay, n-1)))
	}
	return c.deadLetter(ctx, msg, meta, fmt.Sprintf("failed %d times, last: %v", n, herr), log)
}

// deadLetter runs the stage's OnDeadLetter, publishes the message to amr.dlq.<stage> and
// terminates it. When the hook fails or the dead letter cannot be published the message is
// Nak'ed instead: it must not be lost, nor dead-lettered without its consequence.
func (c *consumer) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason string, log *slog.Logger) (string, error) {
	if c.o.OnDeadLetter != nil {
		if err := c.o.OnDeadLetter(ctx, msg, reason); err != nil {
			log.Error("dead-letter hook", "reason", reason, "err", err)
			return ClassRetryable.String(), msg.NakWithDelay(c.o.MaxDelay)
		}
	}
	dl := newDeadLetter(c.o.Stage, msg, meta, reason)
	id := fmt.Sprintf("%s/%s/%d", c.o.Stage, meta.Stream, meta.Sequence.Stream)
	if _, err := Publish(ctx, c.o.JS, topology.DLQSubject(c.o.Stage), dl, id); err != nil {
		log.Error("dead letter", "reason", reason, "err", err)
		return ClassRetryable.String(), msg.NakWithDelay(c.o.MaxDelay)
	}
	log.Warn("dead-lettered", "reason", reason)
	if meta.NumDelivered > 1 {
		c.failures.clear(ctx, failureKey(c.o.Stage, meta), log)
	}
	return "dead_letter", msg.TermWithReason(truncate(reason, 256))
}

// requeue hands a message back at once (shutdown); another replica takes it.
func (c *consumer) requeue(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		c.o.Logger.Warn("requeue", "subject", msg.Subject(), "err", err)
	}
	c.o.Metrics.count(c.o.Stage, "requeued")
}

// sampleLag records the consumer's backlog every LagInterval.
func (c *consumer) sampleLag(ctx context.Context, cons jetstream.Consumer) {
	if c.o.Metrics == nil {
		return
	}
	t := time.NewTicker(c.o.LagInterval)
	defer t.Stop()
	for {
		info, err := cons.Info(ctx)
		if err == nil {
			c.o.Metrics.lag(c.o.Stage, info.NumPending, info.NumAckPending)
		} else if ctx.Err() == nil {
			c.o.Logger.Debug("consumer info", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
