package bus

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KeepAlive sends InProgress for msg every interval until the returned stop function is called
// or ctx ends, so that a long handler (downloading or parsing a 25 MB package file) keeps its
// message past the consumer's AckWait. stop waits for the sender to finish; call it before
// settling the message.
func KeepAlive(ctx context.Context, msg jetstream.Msg, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// A failed InProgress only risks a redelivery, which the pipeline tolerates.
				_ = msg.InProgress()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
