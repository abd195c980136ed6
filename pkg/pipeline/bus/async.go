package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// AsyncOptions bounds an AsyncPublisher.
type AsyncOptions struct {
	// MaxPending is the most publishes awaiting their acknowledgement; Publish blocks beyond it.
	// Default 1000. Keep it at or below the JetStream context's PublishAsyncMaxPending (4000 by
	// default), or that context stalls first.
	MaxPending int
	// AckTimeout fails a publish whose acknowledgement has not come after this long. Default 30 s.
	AckTimeout time.Duration
}

// AsyncPublisher publishes without waiting for each acknowledgement (the parser's record rate
// needs it) while keeping at-least-once: a bounded number of acknowledgements are outstanding,
// every one is checked, and Flush reports any that failed so the caller can Nak its input and
// publish again (the message ids make the second pass a no-op for what did land).
type AsyncPublisher struct {
	js      jetstream.JetStream
	timeout time.Duration
	slots   chan struct{} // one per outstanding publish
	queue   chan pendingAck
	stop    chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	closed bool
	first  error // first failure since the last Flush
	failed int
	sent   int
}

type pendingAck struct {
	fut     jetstream.PubAckFuture
	subject string
	sent    time.Time
	done    func(*jetstream.PubAck, error)
	span    trace.Span // the producer span, ended with the acknowledgement
}

// Errors of an AsyncPublisher.
var (
	// ErrAsyncPublish wraps the failures Flush and Publish report.
	ErrAsyncPublish = errors.New("async publish failed")
	// ErrPublisherClosed is returned by Publish after Close.
	ErrPublisherClosed = errors.New("async publisher closed")
)

// NewAsyncPublisher starts a publisher; Close it to stop its acknowledgement collector.
func NewAsyncPublisher(js jetstream.JetStream, o AsyncOptions) *AsyncPublisher {
	if o.MaxPending <= 0 {
		o.MaxPending = 1000
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 30 * time.Second
	}
	p := &AsyncPublisher{
		js:      js,
		timeout: o.AckTimeout,
		slots:   make(chan struct{}, o.MaxPending),
		queue:   make(chan pendingAck, o.MaxPending),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go p.collect()
	return p
}

// Publish sends m on subject with msgID and returns without waiting for the acknowledgement,
// unless MaxPending acknowledgements are outstanding (then it waits for a slot or ctx). Once an
// acknowledgement has failed, Publish returns that failure until Flush.
func (p *AsyncPublisher) Publish(ctx context.Context, subject string, m proto.Message, msgID string) error {
	if err := p.failure(); err != nil {
		return err
	}
	msg, err := NewMsg(ctx, subject, m, msgID)
	if err != nil {
		return err
	}
	return p.PublishMsg(ctx, msg, nil)
}

// PublishMsg is Publish for a message built with NewMsg or NewEncodedMsg. done, when not nil, is
// called with the stream's acknowledgement or the failure, by one goroutine, in publishing order
// (so a caller can tell how far its publishes have landed), before Flush can return. Once done had
// an acknowledgement, nothing reads msg.Data any more: its buffer may be reused. After a failure
// the client library may still hold it (a retry on "no responders"), so it must not be. Within a
// trace the publish has its producer span, from here to its acknowledgement.
func (p *AsyncPublisher) PublishMsg(ctx context.Context, msg *nats.Msg, done func(*jetstream.PubAck, error)) error {
	if err := p.failure(); err != nil {
		return err
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("publish %s: %w", msg.Subject, ctx.Err())
	}
	_, span := startSend(ctx, msg)
	fut, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		endSend(span, nil, err)
		<-p.slots
		return fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	p.queue <- pendingAck{fut: fut, subject: msg.Subject, sent: time.Now(), done: done, span: span}
	return nil
}

// Flush waits until every publish made before it is acknowledged or failed, and returns the
// failures since the previous Flush (nil when all landed), resetting them.
func (p *AsyncPublisher) Flush(ctx context.Context) error {
	n := 0
	defer func() {
		for ; n > 0; n-- {
			<-p.slots
		}
	}()
	for ; n < cap(p.slots); n++ { // holding every slot means nothing is outstanding
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("flush: %w", ctx.Err())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.failureLocked()
	p.first, p.failed, p.sent = nil, 0, 0
	return err
}

// Close flushes and stops the collector; Publish fails with ErrPublisherClosed afterwards. When ctx
// ends first (a shutdown past its drain time, a connection that died), the acknowledgements still
// outstanding are given up and Close returns the context's error.
func (p *AsyncPublisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.Flush(ctx)
	close(p.stop)
	<-p.done
	return err
}

func (p *AsyncPublisher) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrPublisherClosed
	}
	return p.failureLocked()
}

func (p *AsyncPublisher) failureLocked() error {
	if p.first == nil {
		return nil
	}
	return fmt.Errorf("%w: %d of %d since the last flush, first: %w", ErrAsyncPublish, p.failed, p.sent, p.first)
}

// collect waits for the acknowledgements in publishing order and frees their slots.
func (p *AsyncPublisher) collect() {
	defer close(p.done)
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	for {
		var pa pendingAck
		select {
		case pa = <-p.queue:
		case <-p.stop:
			return
		}
		timer.Reset(time.Until(pa.sent.Add(p.timeout)))
		var (
			ack *jetstream.PubAck
			err error
		)
		select {
		case ack = <-pa.fut.Ok():
		case err = <-pa.fut.Err():
		case <-timer.C:
			err = fmt.Errorf("no acknowledgement after %s", p.timeout)
		case <-p.stop:
			return // closed after its context ended: the acknowledgements still out are given up
		}
		endSend(pa.span, ack, err)
		if pa.done != nil {
			pa.done(ack, err)
		}
		p.mu.Lock()
		p.sent++
		if err != nil {
			p.failed++
			if p.first == nil {
				p.first = fmt.Errorf("publish %s: %w", pa.subject, err)
			}
		}
		p.mu.Unlock()
		<-p.slots
	}
}
