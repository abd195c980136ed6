// Package inventorysink is a downstream consumer of the records stream that ingests every record
// batch into an inventory pass (pkg/inventory), acknowledging a batch only after the transaction
// that wrote it committed: a crash before the commit redelivers the batch, and the inventory's
// idempotent upserts make a batch written twice the same as once.
//
// Batches that arrive together are written in one transaction (a group commit): the source runs
// several handlers at once, each hands its batch to the committer and waits for the commit that
// includes it.
package inventorysink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Ingester writes records in one transaction: *inventory.Pass.
type Ingester interface {
	Ingest(ctx context.Context, recs []*amrpipev1.Record) error
}

// Handler processes one record batch; the source acknowledges the batch when it returns nil and
// delivers it again otherwise. msgID is the batch's Nats-Msg-Id.
type Handler func(ctx context.Context, msgID string, b *amrpipev1.RecordBatch) error

// Source delivers the records stream's batches, at least once, to a Handler: the seam where a
// consumer library (pkg/client) can replace JetStreamSource.
type Source interface {
	Consume(ctx context.Context, h Handler) error
}

// Options configures a Sink.
type Options struct {
	// MaxRecords bounds the records of one transaction (default 16384): more waiting batches
	// wait for the next one. A commit's cost grows with the pages it changes, and the objects'
	// key index is hit at random: the demo's sink took 13 s more than the pipeline at 4,096 and
	// kept up at 16,384 (with JetStreamSource's default Concurrency to match).
	MaxRecords int
	// Linger is how long a transaction waits for more batches once it has one (default 250 ms),
	// up to MaxRecords. Each commit rewrites every page it changed, and the objects' GUID-keyed
	// index is changed at random, so a commit of few records costs nearly as much as one of many:
	// at 20 ms the demo's sink committed 1,300 records at a time (340 commits), at 250 ms 4,500
	// (100 commits), for about 4 % less CPU of the whole demo (docs/inventory.md). A record
	// reaches the inventory that much later at most.
	Linger time.Duration
}

// Sink group-commits record batches into an Ingester.
type Sink struct {
	in      Ingester
	max     int
	linger  time.Duration
	reqs    chan *request
	records atomic.Int64
	batches atomic.Int64
}

type request struct {
	recs []*amrpipev1.Record
	done chan error
}

// New returns a sink writing into in.
func New(in Ingester, o Options) *Sink {
	if o.MaxRecords <= 0 {
		o.MaxRecords = 16384
	}
	if o.Linger <= 0 {
		o.Linger = 250 * time.Millisecond
	}
	return &Sink{in: in, max: o.MaxRecords, linger: o.Linger, reqs: make(chan *request)}
}

// Records is how many records were committed (a redelivered batch counts again).
func (s *Sink) Records() int64 { return s.records.Load() }

// Run commits the batches its Write calls hand over until ctx ends, and consumes src into them.
// It returns when src's Consume returns.
func (s *Sink) Run(ctx context.Context, src Source) error {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var committers sync.WaitGroup
	// Two committers: one converts its group's records while the other's transaction runs
	// (Ingest converts outside the pass's lock).
	for range 2 {
		committers.Go(func() { s.commit(cctx) })
	}
	err := src.Consume(ctx, s.Write)
	cancel() // Consume has drained its handlers: nothing waits for a commit any more
	committers.Wait()
	return err
}

// Write hands a batch to the committer and waits until the transaction that holds it committed
// (nil) or failed. It is the sink's Handler.
func (s *Sink) Write(ctx context.Context, _ string, b *amrpipev1.RecordBatch) error {
	if len(b.GetRecords()) == 0 {
		return nil
	}
	r := &request{recs: b.GetRecords(), done: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done(): // the transaction may still commit; the batch comes again either way
		return ctx.Err()
	}
}

// commit takes the first waiting batch and every other already waiting, up to MaxRecords, and
// writes them in one transaction.
func (s *Sink) commit(ctx context.Context) {
	var group []*request
	var recs []*amrpipev1.Record
	for {
		group, recs = group[:0], recs[:0]
		select {
		case r := <-s.reqs:
			group, recs = append(group, r), append(recs, r.recs...)
		case <-ctx.Done():
			return
		}
		// Linger a moment for more batches: a transaction's cost is mostly per commit (WAL
		// frames, checkpoints), so a sink keeping up with a trickle of small batches would
		// otherwise pay it per batch.
		linger := time.NewTimer(s.linger)
	more:
		for len(recs) < s.max {
			select {
			case r := <-s.reqs:
				group, recs = append(group, r), append(recs, r.recs...)
			case <-linger.C:
				break more
			case <-ctx.Done():
				break more
			}
		}
		linger.Stop()
		err := s.in.Ingest(ctx, recs)
		if err == nil {
			s.records.Add(int64(len(recs)))
			s.batches.Add(int64(len(group)))
		}
		if collides(err) && len(group) > 1 {
			// Objects of one batch that the inventory can never hold: each batch alone, so that
			// the others commit and only the batch that holds them fails.
			for _, r := range group {
				r.done <- s.ingestAlone(ctx, r.recs)
			}
			continue
		}
		for _, r := range group {
			r.done <- permanent(err)
		}
	}
}

// ingestAlone writes one batch in a transaction of its own.
func (s *Sink) ingestAlone(ctx context.Context, recs []*amrpipev1.Record) error {
	err := s.in.Ingest(ctx, recs)
	if err == nil {
		s.records.Add(int64(len(recs)))
		s.batches.Add(1)
	}
	return permanent(err)
}

// permanent marks the failures that fail a batch whenever it is written (two of its objects, or
// one of its objects and a stored one, have the same key) as such, for the source to dead-letter
// the batch with the reason instead of handing it back.
func permanent(err error) error {
	if collides(err) {
		return &bus.Permanent{Reason: "inventory", Err: err}
	}
	return err
}

// collides reports whether err is two objects with one key (inventory.KeyCollisionError).
func collides(err error) bool {
	var kc *inventory.KeyCollisionError
	return errors.As(err, &kc)
}

// Stage is the name the sink consumes under: its dead letters go to amr.dlq.inventory.
const Stage = "inventory"

// JetStreamSource consumes AMR_RECORDS through a durable downstream consumer (declared by the
// topology: topology.DownstreamConsumer) with the bus's consume loop: Concurrency handlers at
// once (batches for one group commit), failures handed back with back-off, a batch that cannot
// be decoded dead-lettered with its reason.
type JetStreamSource struct {
	JS jetstream.JetStream
	// Durable names the consumer (default topology.DefaultDownstream).
	Durable string
	// Concurrency is how many batches may wait for a commit (default 128: two groups of the
	// sink's default MaxRecords in parser batches of 256 records, one being written while the
	// next gathers; at 64, both together held about 15,600 records, and groups gathered for 1 s
	// averaged 7,000).
	Concurrency int
	Logger      *slog.Logger
}

// Consume runs until ctx ends (nil) or the consumer cannot be read.
func (j *JetStreamSource) Consume(ctx context.Context, h Handler) error {
	durable := j.Durable
	if durable == "" {
		durable = topology.DefaultDownstream
	}
	cons, err := j.JS.Consumer(ctx, topology.StreamRecords, durable)
	if err != nil {
		return fmt.Errorf("inventory sink: consumer %s of %s (declared by the topology: amrctl topology apply --downstream): %w",
			durable, topology.StreamRecords, err)
	}
	conc := j.Concurrency
	if conc <= 0 {
		conc = 128
	}
	return bus.Consume(ctx, cons, func(ctx context.Context, msg jetstream.Msg) error {
		var b amrpipev1.RecordBatch
		if err := bus.Decode(msg, &b); err != nil {
			return &bus.Permanent{Reason: "record batch " + msg.Subject() + " does not decode", Err: err}
		}
		return h(ctx, msg.Headers().Get(jetstream.MsgIDHeader), &b)
	}, bus.ConsumeOptions{Stage: Stage, JS: j.JS, Concurrency: conc, Logger: j.Logger})
}
