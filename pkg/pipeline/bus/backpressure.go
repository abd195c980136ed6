package bus

import (
	"errors"
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
