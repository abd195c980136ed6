package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream's error codes for a write refused for want of space (nats-server's
// jetstream_errors_generated.go).
const (
	codeAccountResourcesExceeded = 10002 // "resource limits exceeded for account"
	codeInsufficientResources    = 10023 // "insufficient resources": the server's storage is exhausted
	codeMemoryResourcesExceeded  = 10028 // "insufficient memory resources available"
	codeStorageResourcesExceeded = 10047 // "insufficient storage resources available"
	codeStreamStoreFailed        = 10077 // "{err}": the stream's own limit, below
	codeClusterNotAvailable      = 10008 // "JetStream system temporarily unavailable"
	codeClusterNotLeader         = 10009 // "JetStream cluster can not handle request"
)

// Full reports whether err is JetStream refusing a publish or a key-value or object write
// because a stream, bucket or object store reached its size limit (DiscardNew: "maximum bytes
// exceeded", "maximum messages exceeded") or the server's or account's storage is exhausted
// ("insufficient resources"). Such a refusal is back-pressure: the write succeeds once readers
// have made room, so Own classifies it as throttled and it is never counted as a failure.
func Full(err error) bool {
	if errors.Is(err, ErrNoRoom) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case codeAccountResourcesExceeded, codeInsufficientResources, codeMemoryResourcesExceeded, codeStorageResourcesExceeded:
		return true
	case codeStreamStoreFailed:
		d := apiErr.Description
		return strings.Contains(d, "maximum bytes exceeded") || strings.Contains(d, "maximum messages exceeded")
	}
	return false
}

// Unavailable reports whether err is JetStream itself being unable to take a request for now: no
// stream or service answered (a leader being elected after a server died), the cluster said it
// is temporarily unavailable or has no leader for the request, or the connection is down and
// reconnecting. The request was never judged, so it is not the message's failure: Own classifies
// it as throttled, like a full store, and the message waits until JetStream is back. A request
// that timed out is not among these: a timeout does not say whose fault it was.
func Unavailable(err error) bool {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == codeClusterNotAvailable || apiErr.ErrorCode == codeClusterNotLeader) {
		return true
	}
	// The object store's reads still go through the older API, with its own error type.
	var oldErr *nats.APIError
	return errors.As(err, &oldErr) && (oldErr.ErrorCode == codeClusterNotAvailable || oldErr.ErrorCode == codeClusterNotLeader)
}

// ErrNoRoom: a stream that drops its oldest messages when full, instead of refusing new ones, is
// nearly full (Room). It is back-pressure like a refusal (Full).
var ErrNoRoom = errors.New("stream nearly full")

// Room checks that stream has room for need more bytes below 90% of its MaxBytes, else returns
// ErrNoRoom. It is for a stream that cannot refuse new messages (JetStream's message schedules
// require DiscardOld): its publishers that must never have a message dropped look first, and the
// 10% left over absorbs what publishers racing past the check add.
func Room(ctx context.Context, js jetstream.JetStream, stream string, need int64) error {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	if limit := info.Config.MaxBytes; limit > 0 && int64(info.State.Bytes)+need > limit/10*9 {
		return fmt.Errorf("%w: %s holds %d of its %d bytes", ErrNoRoom, stream, info.State.Bytes, limit)
	}
	return nil
}
