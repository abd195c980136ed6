package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Handler is handed each record once. A nil return means the caller has processed the record;
// an error hands the record's batch back to the stream, to be delivered again after a back-off
// (the records of the batch the handler already accepted are not handed over again by this
// Consumer). rec.JobId is always set.
type Handler func(ctx context.Context, rec *amrpipev1.Record) error

// BatchHandler is handed the new records of one record batch at once (those not handed over
// before); the batch is acknowledged only when it returns nil, and every record of it counts as
// handed over only then. Use it to write a batch in one transaction.
type BatchHandler func(ctx context.Context, b *Batch) error

// Batch is the part of one record batch (one message of AMR_RECORDS) not handed over before.
type Batch struct {
	// JobID and SourceFile are the batch's AMR job and package file.
	JobID, SourceFile string
	// SpecID is the job spec the job was created for.
	SpecID string
	// Records are the batch's records not handed over before, in sequence order.
	Records []*amrpipev1.Record
	// MsgID is the batch's message id ("<jobID>/<file>/<framing>/<from>-<to>").
	MsgID string
	// StreamSequence is the batch's position in AMR_RECORDS; Delivered counts its deliveries to
	// this consumer (above 1 after a handler error or a restart).
	StreamSequence, Delivered uint64
}

// ConsumeOption configures a Consumer.
type ConsumeOption func(*consumeOptions)

type consumeOptions struct {
	jobs      []string
	batchSize int
	follow    bool
	drain     time.Duration
	retryBase time.Duration
	since     time.Time
}

// WithJobs limits a Reader to the records of these AMR jobs. A declared consumer (Consumer)
// refuses it: it reads every job, and skipping records would acknowledge them unread.
func WithJobs(jobIDs ...string) ConsumeOption {
	return func(o *consumeOptions) { o.jobs = append(o.jobs, jobIDs...) }
}

// WithSince starts a Reader at the first record batch stored at or after t (JetStream's
// DeliverByStartTime, on the server), instead of at the start of what the stream holds. A
// declared consumer (Consumer) refuses it: it resumes where it stopped.
func WithSince(t time.Time) ConsumeOption {
	return func(o *consumeOptions) { o.since = t }
}

// WithBatchSize sets how many record batches (messages, each up to about 1 MB of records) are
// fetched at once (default 8).
func WithBatchSize(n int) ConsumeOption {
	return func(o *consumeOptions) {
		if n > 0 {
			o.batchSize = n
		}
	}
}

// WithFollow(false) makes Run return nil once every record stored when it started, and since,
// was handed over and settled: the end of the stream for this consumer. By default Run follows
// the stream until its context ends.
func WithFollow(follow bool) ConsumeOption {
	return func(o *consumeOptions) { o.follow = follow }
}

// WithDrainTimeout bounds how long Run, when its context ends, goes on handing over the records
// of the batch in hand so that it can acknowledge it (default 30 s; the handler's context is
// cancelled after it, and the batch is handed back).
func WithDrainTimeout(d time.Duration) ConsumeOption {
	return func(o *consumeOptions) {
		if d > 0 {
			o.drain = d
		}
	}
}

// WithRetryBase sets the first back-off after a handler error (default 1 s, doubling per delivery
// to 5 min, jittered: pkg/pipeline/backoff).
func WithRetryBase(d time.Duration) ConsumeOption {
	return func(o *consumeOptions) {
		if d > 0 {
			o.retryBase = d
		}
	}
}

// maxRetryDelay is the longest back-off after a handler error, as the pipeline's own consumers.
const maxRetryDelay = 5 * time.Minute

const (
	// fetchWait is how long a following pull request waits for batches; also how long a stop
	// may wait.
	fetchWait = 2 * time.Second
	// handBackMargin covers the time between the client's clock and the server's taking a pull
	// request (and a FetchNoWait request, which the server keeps while messages are pending).
	handBackMargin = 100 * time.Millisecond
)

// Consumer reads record batches through one JetStream consumer of AMR_RECORDS, de-duplicates
// their records on Key and hands them over. Run it from one goroutine at a time.
type Consumer struct {
	c       *Client
	name    string // durable name; "" for a reader
	cons    jetstream.Consumer
	opts    consumeOptions
	dd      *dedup
	deleted bool
	stream  jetstream.Stream // AMR_RECORDS, looked up at the first end check
}

// Consumer binds the declared downstream consumer name: a durable consumer of AMR_RECORDS that
// the topology created (amrctl topology apply --downstream name), which keeps every record until
// this consumer acknowledged it and resumes where the last run stopped. A name the topology did
// not declare is refused with an error saying what to run (wrapping topology.ErrMissing): the
// client never creates one, because records published before it existed would not be kept for it.
func (c *Client) Consumer(ctx context.Context, name string, opts ...ConsumeOption) (*Consumer, error) {
	o := newConsumeOptions(opts)
	if len(o.jobs) > 0 {
		return nil, fmt.Errorf("consumer %s: a job filter needs a Reader: a declared consumer reads every job, and skipping records would acknowledge them unread", name)
	}
	if !o.since.IsZero() {
		return nil, fmt.Errorf("consumer %s: a start time needs a Reader: a declared consumer resumes where it stopped", name)
	}
	if err := topology.VerifyDownstream(ctx, c.js, name); err != nil {
		return nil, err
	}
	cons, err := c.js.Consumer(ctx, topology.StreamRecords, name)
	if err != nil {
		return nil, fmt.Errorf("bind consumer %s: %w", name, err)
	}
	return &Consumer{c: c, name: name, cons: cons, opts: o, dd: newDedup()}, nil
}

// Reader opens a reader of AMR_RECORDS that holds no record back and takes none from the declared
// consumers (topology.ReaderConsumer: ephemeral, no acknowledgements, from the start of what the
// stream holds; records already acknowledged by every declared consumer are gone). It suits
// inspection (amrctl tail) and tests, not a migration: it does not resume. Close removes it.
func (c *Client) Reader(ctx context.Context, opts ...ConsumeOption) (*Consumer, error) {
	o := newConsumeOptions(opts)
	filters := []string{topology.RecordSubject("*")}
	if len(o.jobs) > 0 {
		filters = filters[:0]
		for _, j := range o.jobs {
			if err := topology.CheckToken(j); err != nil {
				return nil, fmt.Errorf("job %q: %w", j, err)
			}
			filters = append(filters, topology.RecordSubject(j))
		}
	}
	cfg := topology.ReaderConsumer(filters...)
	if !o.since.IsZero() {
		since := o.since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := c.js.CreateConsumer(ctx, topology.StreamRecords, cfg)
	if err != nil {
		return nil, fmt.Errorf("records reader: %w", err)
	}
	return &Consumer{c: c, cons: cons, opts: o, dd: newDedup()}, nil
}

func newConsumeOptions(opts []ConsumeOption) consumeOptions {
	o := consumeOptions{batchSize: 8, follow: true, drain: 30 * time.Second, retryBase: time.Second}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Close removes a Reader's ephemeral consumer (the server would a minute later); for a declared
// consumer it does nothing: the consumer and its position stay for the next run.
func (k *Consumer) Close() error {
	if k.name != "" || k.deleted {
		return nil
	}
	k.deleted = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := k.c.js.DeleteConsumer(ctx, topology.StreamRecords, k.cons.CachedInfo().Name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("remove records reader: %w", err)
	}
	return nil
}

// Remembered is how many jobs, and spans of record sequences, the de-duplication holds: a job
// is forgotten once its summary was seen and everything up to it acknowledged.
func (k *Consumer) Remembered() (jobs, spans int) { return k.dd.size() }

// Run hands every record over to h, once, until ctx ends (or, WithFollow(false), the end of the
// stream). A batch is acknowledged only after h returned nil for each of its new records; when
// h fails, the batch is handed back with a back-off and its remaining records come again.
// When ctx ends, Run finishes the batch in hand (WithDrainTimeout), hands back the batches fetched
// but not started, and returns nil. It returns an error when a batch cannot be decoded (the batch
// stays unacknowledged) or JetStream fails.
func (k *Consumer) Run(ctx context.Context, h Handler) error {
	return k.run(ctx, func(ctx context.Context, b *Batch) error {
		for _, r := range b.Records {
			if err := h(ctx, r); err != nil {
				return fmt.Errorf("record %d of %s: %w", r.GetSequence(), b.MsgID, err)
			}
			k.dd.mark(Key{b.JobID, b.SourceFile, r.GetSequence()})
		}
		return nil
	})
}

// RunBatches is Run with a handler per batch: the batch's new records count as handed over, and
// the batch is acknowledged, only when h returns nil.
func (k *Consumer) RunBatches(ctx context.Context, h BatchHandler) error {
	return k.run(ctx, func(ctx context.Context, b *Batch) error {
		if err := h(ctx, b); err != nil {
			return fmt.Errorf("batch %s: %w", b.MsgID, err)
		}
		for _, r := range b.Records {
			k.dd.mark(Key{b.JobID, b.SourceFile, r.GetSequence()})
		}
		return nil
	})
}

// run fetches batches and settles each from handle's error.
func (k *Consumer) run(ctx context.Context, handle func(context.Context, *Batch) error) error {
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		k.watchSummaries(wctx)
	}()
	defer func() { stopWatch(); <-watchDone }()

	for ctx.Err() == nil {
		var batch jetstream.MessageBatch
		var err error
		// Until pullEnds the server may deliver to this pull request: a message handed back
		// earlier would come straight back into it, up to the batch size, each time counted
		// as a delivery (and NumDelivered drives the handler's back-off).
		pullEnds := time.Now().Add(handBackMargin)
		if k.opts.follow {
			pullEnds = pullEnds.Add(fetchWait)
			batch, err = k.cons.Fetch(k.opts.batchSize, jetstream.FetchMaxWait(fetchWait))
		} else {
			// No pull request left waiting at the end: it would take batches published later
			// and hold them until AckWait.
			batch, err = k.cons.FetchNoWait(k.opts.batchSize)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) || bus.Unavailable(err) {
				k.c.log.WarnContext(ctx, "records fetch failed; trying again", "err", err)
				if err := backoff.Sleep(ctx, time.Second); err != nil {
					return nil
				}
				continue
			}
			return fmt.Errorf("fetch record batches: %w", err)
		}
		n, last := 0, false
		for msg := range batch.Messages() {
			n++
			if ctx.Err() != nil {
				k.handBack(msg, pullEnds) // fetched, not started: another run takes it
				continue
			}
			pendingAfter, err := k.process(ctx, msg, handle)
			if err != nil {
				k.handBack(msg, pullEnds)
				for rest := range batch.Messages() {
					k.handBack(rest, pullEnds)
				}
				return err
			}
			last = pendingAfter == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) &&
			ctx.Err() == nil {
			k.c.log.WarnContext(ctx, "records fetch ended with an error", "err", err)
		}
		if !k.opts.follow && (n == 0 || last) {
			if done, err := k.atEnd(ctx); err != nil || done {
				return err
			}
			if n == 0 { // a batch handed back waits for its back-off
				if err := backoff.Sleep(ctx, 100*time.Millisecond); err != nil {
					return nil
				}
			}
		}
	}
	return nil
}

// process decodes one message, hands its new records over and settles it. It returns the number
// of messages pending after it, and an error only for what Run must stop on.
func (k *Consumer) process(ctx context.Context, msg jetstream.Msg, handle func(context.Context, *Batch) error) (uint64, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return 0, fmt.Errorf("record batch on %s: %w", msg.Subject(), err)
	}
	var rb amrpipev1.RecordBatch
	if err := bus.Decode(msg, &rb); err != nil {
		return 0, fmt.Errorf("record batch %d on %s (left unacknowledged): %w", meta.Sequence.Stream, msg.Subject(), err)
	}
	b := &Batch{JobID: rb.GetJobId(), SourceFile: rb.GetSourceFile(), SpecID: rb.GetSpecId(),
		MsgID: msg.Headers().Get(jetstream.MsgIDHeader), StreamSequence: meta.Sequence.Stream, Delivered: meta.NumDelivered}
	for _, r := range rb.GetRecords() {
		if r.GetJobId() == "" {
			r.JobId = b.JobID
		}
		if r.GetSourceFile() == "" {
			r.SourceFile = b.SourceFile
		}
		if !k.dd.seen(Key{r.GetJobId(), r.GetSourceFile(), r.GetSequence()}) {
			b.Records = append(b.Records, r)
		}
	}
	if len(b.Records) == 0 {
		k.ack(ctx, msg, b)
		return meta.NumPending, nil
	}
	// The handler finishes the batch in hand when ctx ends, for at most the drain timeout.
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(k.opts.drain, cancel) })
	defer stopDrain()
	var stopKeepAlive func()
	if k.name != "" {
		stopKeepAlive = bus.KeepAlive(hctx, msg, topology.AckWait/3)
	}
	herr := handle(hctx, b)
	if stopKeepAlive != nil {
		stopKeepAlive()
	}
	if herr != nil && k.name == "" {
		// A reader cannot hand a batch back: it acknowledges nothing.
		return 0, fmt.Errorf("record batch %d of job %s (a reader cannot deliver it again): %w", b.StreamSequence, b.JobID, herr)
	}
	if herr != nil {
		wait := backoff.Delay(k.opts.retryBase, maxRetryDelay, int(meta.NumDelivered)-1)
		k.c.log.WarnContext(ctx, "record handler failed; the batch comes again", "job", b.JobID, "file", b.SourceFile,
			"stream_seq", b.StreamSequence, "delivered", b.Delivered, "retry_in", wait, "err", herr)
		if k.name != "" {
			if err := msg.NakWithDelay(wait); err != nil {
				k.c.log.WarnContext(ctx, "nak failed; the batch comes again after AckWait", "stream_seq", b.StreamSequence, "err", err)
			}
		}
		return meta.NumPending + 1, nil
	}
	k.ack(ctx, msg, b)
	return meta.NumPending, nil
}

// ack acknowledges a batch and waits for the server's confirmation. A lost acknowledgement costs
// a redelivery, which the de-duplication absorbs.
func (k *Consumer) ack(ctx context.Context, msg jetstream.Msg, b *Batch) {
	if k.name == "" {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		k.c.log.WarnContext(ctx, "acknowledgement failed; the batch may come again", "job", b.JobID, "file", b.SourceFile,
			"stream_seq", b.StreamSequence, "err", err)
	}
}

// handBack returns a message fetched but not handled, to be delivered again once the pull
// request it came on has ended (so to another pull request, of this run or another).
func (k *Consumer) handBack(msg jetstream.Msg, pullEnds time.Time) {
	if k.name == "" {
		return
	}
	if err := msg.NakWithDelay(max(time.Until(pullEnds), 0)); err != nil {
		k.c.log.Warn("nak failed; the batch comes again after AckWait", "subject", msg.Subject(), "err", err)
	}
}

// atEnd reports whether nothing is left for this consumer: no message waits to be delivered,
// none is delivered without an acknowledgement (one handed back waits for its back-off), and the
// stream holds no message for it past the last one delivered. The last check is there because
// the server counts a consumer's pending messages asynchronously (the stream signals its
// consumers from a queue): just after a publish was acknowledged, the count, and a FetchNoWait,
// can still say there is nothing (CI saw a run end before the one batch published).
func (k *Consumer) atEnd(ctx context.Context) (bool, error) {
	info, err := k.cons.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("records consumer info: %w", err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		return false, nil
	}
	filters := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		filters = append(filters, info.Config.FilterSubject)
	}
	if len(filters) == 0 {
		filters = []string{topology.RecordSubject("*")}
	}
	if k.stream == nil { // one lookup (a stream info request) per run, not per check
		if k.stream, err = k.c.js.Stream(ctx, topology.StreamRecords); err != nil {
			return false, fmt.Errorf("records stream: %w", err)
		}
	}
	for _, f := range filters {
		last, err := k.stream.GetLastMsgForSubject(ctx, f)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("last record batch on %s: %w", f, err)
		}
		if last.Sequence > info.Delivered.Stream && (k.opts.since.IsZero() || !last.Time.Before(k.opts.since)) {
			return false, nil // not counted yet: the next fetch gets it
		}
	}
	return true, nil
}

// watchSummaries retires each job whose summary appears on AMR_DONE and sweeps the retired jobs
// the consumer's acknowledgement floor passed, until ctx ends. Without it the de-duplication
// would remember every job the consumer ever saw.
func (k *Consumer) watchSummaries(ctx context.Context) {
	sweep := time.NewTicker(2 * time.Second)
	defer sweep.Stop()
	summaries := make(chan string, 64)
	done := make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		err := k.c.follow(ctx, topology.StreamDone, []string{topology.DoneSubject("*")}, true, func(msg jetstream.Msg) error {
			var s amrpipev1.JobSummary
			if err := bus.Decode(msg, &s); err != nil {
				return nil // not ours to judge: the job is then remembered until Run ends
			}
			select {
			case summaries <- s.GetJobId():
			case <-ctx.Done():
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			k.c.log.WarnContext(ctx, "job summaries not followed; de-duplication keeps every job until Run ends", "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-summaries:
			// The stream's end is read after the summaries arrived, so it is past every batch of
			// their jobs; one read serves every summary waiting.
			jobs := []string{job}
			for more := true; more; {
				select {
				case j := <-summaries:
					jobs = append(jobs, j)
				default:
					more = false
				}
			}
			s, err := k.c.js.Stream(ctx, topology.StreamRecords)
			if err != nil {
				continue
			}
			for _, j := range jobs {
				k.dd.retire(j, s.CachedInfo().State.LastSeq)
			}
		case <-sweep.C:
			if !k.dd.pending() {
				continue
			}
			info, err := k.cons.Info(ctx)
			if err != nil {
				continue
			}
			k.dd.sweep(info.AckFloor.Stream)
		}
	}
}
