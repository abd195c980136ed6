package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

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
