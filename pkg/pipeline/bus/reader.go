package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DropReader deletes the ephemeral consumer of a reader that is done (an ordered consumer, or
// one of topology.ReaderConsumer) now instead of at its inactive threshold. Readers made often
// (a look at every job record, each resumed file) would otherwise pile up on the server until it
// refuses new ones ("maximum consumers limit reached", seen on a 3-node cluster), and with them
// every look. It uses a context of its own, so a reader ended by its caller's context is dropped
// too; a consumer already gone is not an error.
func DropReader(ctx context.Context, js jetstream.JetStream, stream string, cons jetstream.Consumer) error {
	if cons == nil {
		return nil
	}
	info := cons.CachedInfo()
	if info == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := js.DeleteConsumer(ctx, stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("drop reader %s of %s: %w", info.Name, stream, err)
	}
	return nil
}

// readFetchWait bounds the wait for one message of ReadStored: on a cluster a pull sent while a
// leader changes is lost, and the caller asks again rather than wait out its whole deadline.
const readFetchWait = 5 * time.Second

// ReadStored hands fn, in stream order, the messages of stream that cfg selects and that were
// stored when it started (one removed meanwhile is skipped; it hands over no more messages than
// were stored then), through an ordered consumer (nothing acknowledged, nothing held back, the
// consumer dropped at the end), pulling up to batch at a time. It never waits for new messages:
// a look at a stream, not a subscription.
//
// It consumes rather than fetches: an ordered consumer makes a new server consumer for every
// Fetch and deletes the old one in the background, so a look at 10,000 job records made 40
// consumers and could leave one behind it for a moment.
func ReadStored(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, batch int,
	fn func(jetstream.Msg) error) error {
	if cfg.InactiveThreshold == 0 {
		cfg.InactiveThreshold = 30 * time.Second
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer func() { _ = DropReader(ctx, js, stream, cons) }()
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	left := int(info.NumPending)
	if left == 0 {
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(max(1, min(left, batch))))
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	for left > 0 {
		msg, err := it.Next(jetstream.NextMaxWait(readFetchWait))
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("read %s: %w", stream, context.Cause(ctx))
		case errors.Is(err, nats.ErrTimeout):
			return fmt.Errorf("read %s: %d messages not delivered within %s", stream, left, readFetchWait)
		case err != nil:
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if err := fn(msg); err != nil {
			return err
		}
		left--
		// Messages removed since the start (a key's older revision, an expired message) are
		// not delivered: the server's count of what is left says when the look is over.
		if meta, err := msg.Metadata(); err == nil && meta.NumPending == 0 {
			return nil
		}
	}
	return nil
}
