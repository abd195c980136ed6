package bus

import (
	"errors"
	"strings"

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
