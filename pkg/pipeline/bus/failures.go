package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// failureCounter counts each message's non-throttled failures per stage in the amr_failures
// bucket, keyed "<stage>.<stream>.<stream sequence>". Only failures write to it (and the Ack or
// Term of a redelivered message deletes the key), so the happy path costs nothing; the bucket's
// TTL removes what a crash leaves behind.
type failureCounter struct {
	kv jetstream.KeyValue
}

func bindFailures(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (failureCounter, error) {
	var kv jetstream.KeyValue
	// The bucket exists (the topology was ensured): failing to bind it means NATS is away for a
	// moment; wait for it rather than stop the stage.
	err := backoff.Retry(ctx, time.Second, 30*time.Second, func(ctx context.Context) error {
		var err error
		kv, err = js.KeyValue(ctx, topology.BucketFailures)
		return err
	}, func(err error, wait time.Duration) {
		log.Warn("bind bucket "+topology.BucketFailures, "err", err, "retry_in", wait.String())
	})
	if err != nil {
		return failureCounter{}, fmt.Errorf("bind bucket %s: %w", topology.BucketFailures, err)
	}
	return failureCounter{kv: kv}, nil
}

func failureKey(stage string, meta *jetstream.MsgMetadata) string {
	return stage + "." + meta.Stream + "." + strconv.FormatUint(meta.Sequence.Stream, 10)
}

// maxCASAttempts bounds compare-and-set loops; two replicas never fail the same delivery at
// once, so a conflict is rare.
const maxCASAttempts = 8

// incr adds one failure and returns the new count.
func (f failureCounter) incr(ctx context.Context, key string) (int, error) {
	for range maxCASAttempts {
		e, err := f.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			_, err = f.kv.Create(ctx, key, []byte("1"))
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("count failure %s: %w", key, err)
			}
			return 1, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read failures %s: %w", key, err)
		}
		n, err := strconv.Atoi(string(e.Value()))
		if err != nil {
			n = 0 // unreadable: start again rather than never dead-letter
		}
		n++
		_, err = f.kv.Update(ctx, key, []byte(strconv.Itoa(n)), e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("count failure %s: %w", key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("count failure %s: conflicting updates", key)
}

// clear forgets a settled message's failures; failing to is harmless (TTL), so it only logs.
func (f failureCounter) clear(ctx context.Context, key string, log *slog.Logger) {
	if err := f.kv.Purge(ctx, key); err != nil {
		log.Debug("clear failure count", "key", key, "err", err)
	}
}
