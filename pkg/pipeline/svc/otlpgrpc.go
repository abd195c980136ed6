//go:build otlpgrpc

package svc

import (
	"context"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// newOTLPGRPCExporter is OTLP over gRPC, built in with -tags otlpgrpc only: the default binaries
// speak OTLP over HTTP and do not link the gRPC exporter.
func newOTLPGRPCExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	return otlptracegrpc.New(ctx) // endpoint, headers, TLS from the OTEL_EXPORTER_OTLP_* variables
}
