package topology

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Ensure creates or updates every stream, bucket, object store and durable consumer, so that a
// service can start against an empty or an older server. It is idempotent and safe to run from
// every replica at once. A change JetStream cannot apply in place (a stream's retention, storage
// type) fails with the server's error rather than deleting data.
func Ensure(ctx context.Context, js jetstream.JetStream, o Options) error {
	for _, cfg := range Streams(o) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range Buckets(o) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	for _, cfg := range ObjectStores(o) {
		if _, err := js.CreateOrUpdateObjectStore(ctx, cfg); err != nil {
			return fmt.Errorf("ensure object store %s: %w", cfg.Bucket, err)
		}
	}
	for _, c := range Consumers() {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config); err != nil {
			return fmt.Errorf("ensure consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
		}
	}
	return nil
}

// BindConsumer returns the named durable consumer, creating or updating it to its documented
// configuration first (a service may start before anyone ran Ensure with a newer topology).
func BindConsumer(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Consumer, error) {
	spec, err := Consumer(name)
	if err != nil {
		return nil, err
	}
	c, err := js.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config)
	if err != nil {
		return nil, fmt.Errorf("bind consumer %s on %s: %w", name, spec.Stream, err)
	}
	return c, nil
}
