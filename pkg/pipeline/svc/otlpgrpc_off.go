//go:build !otlpgrpc

package svc

import (
	"context"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// newOTLPGRPCExporter refuses: this build has no OTLP over gRPC (see otlpgrpc.go).
func newOTLPGRPCExporter(context.Context) (sdktrace.SpanExporter, error) {
	return nil, errNoGRPC
}
