package topology

import (
	"context"
	"errors"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// tryWithin bounds one JetStream API request of Ensure and Verify. In a cluster a request's
// reply can be lost (a meta leader settling, a busy machine; seen on CI, where one stream create
// then held a two-minute apply to its end); each request is therefore asked again, with the
// same arguments, when no reply came within it. Every request they make is a read or an
// idempotent create-or-update, so asking again is safe.
const tryWithin = 10 * time.Second

// patient is the JetStream of Ensure and Verify: it asks each of their requests again when its
// reply was lost (again).
type patient struct{ jetstream.JetStream }

func (p patient) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	return again(ctx, func(ctx context.Context) (jetstream.Stream, error) { return p.JetStream.Stream(ctx, name) })
}

func (p patient) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return again(ctx, func(ctx context.Context) (jetstream.Stream, error) { return p.JetStream.CreateOrUpdateStream(ctx, cfg) })
}

func (p patient) Consumer(ctx context.Context, stream, name string) (jetstream.Consumer, error) {
	return again(ctx, func(ctx context.Context) (jetstream.Consumer, error) { return p.JetStream.Consumer(ctx, stream, name) })
}

func (p patient) CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return again(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return p.JetStream.CreateOrUpdateConsumer(ctx, stream, cfg)
	})
}

func (p patient) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return again(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return p.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	})
}

func (p patient) CreateOrUpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return again(ctx, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return p.JetStream.CreateOrUpdateObjectStore(ctx, cfg)
	})
}

// again runs req, each try within tryWithin, until it gets a reply or ctx ends (backoff.Retry).
// No responders is asked again a few times only (about 3 s): a stream's leader being elected
// answers soon, a server without JetStream never does, and its operator should hear so at once.
func again[T any](ctx context.Context, req func(context.Context) (T, error)) (T, error) {
	const maxUnanswered = 5
	var v T
	unanswered := 0
	err := backoff.Retry(ctx, 100*time.Millisecond, 2*time.Second, func(ctx context.Context) error {
		tctx, cancel := context.WithTimeout(ctx, tryWithin)
		defer cancel()
		var err error
		v, err = req(tctx)
		switch {
		case err == nil:
			return nil
		case noResponders(err):
			if unanswered++; unanswered < maxUnanswered {
				return err
			}
		case timedOut(err) && ctx.Err() == nil:
			return err
		}
		return backoff.Permanent(err)
	}, nil)
	return v, err
}

// timedOut reports whether err says no reply came within the try's deadline: a request or its
// reply was lost.
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// noResponders reports whether no server took the request.
func noResponders(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
