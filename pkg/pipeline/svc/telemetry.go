package svc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/amrpipe/amrpipe/pkg/pipeline/buildinfo"
)

// errNoGRPC is returned when OTLP over gRPC is asked of a binary built without it.
var errNoGRPC = errors.New("OTLP over gRPC is not in this build (rebuild with -tags otlpgrpc, or use http/protobuf)")

// newTracerProvider builds the SDK provider. The exporters are what mode names (the -otel flag),
// or with "auto" what OTEL_TRACES_EXPORTER lists, or OTLP when an OTLP endpoint is set, else none.
// OTLP goes over http/protobuf unless OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL says grpc; the exporters read their endpoint, headers, TLS and
// timeout from the OTEL_EXPORTER_OTLP_* variables themselves, the SDK its sampler from
// OTEL_TRACES_SAMPLER, and the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (which win
// over name and the build's service.version). OTEL_SDK_DISABLED=true records nothing. Even
// without an exporter the SDK makes real spans, so trace and span ids reach logs and the next
// stage's traceparent.
func newTracerProvider(ctx context.Context, name, mode string, lookup func(string) (string, bool), stdout io.Writer,
	extra sdktrace.SpanProcessor) (*sdktrace.TracerProvider, error) {
	if v, ok := lookup("OTEL_SDK_DISABLED"); ok {
		if off, err := strconv.ParseBool(v); err == nil && off {
			return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())), nil
		}
	}
	exporters, err := traceExporters(mode, lookup)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(name), semconv.ServiceVersion(buildinfo.Read().ServiceVersion())),
		resource.WithFromEnv(), // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if extra != nil {
		opts = append(opts, sdktrace.WithSpanProcessor(extra))
	}
	for _, e := range exporters {
		var exp sdktrace.SpanExporter
		switch e {
		case "otlp":
			exp, err = newOTLPExporter(ctx, lookup)
		case "console":
			exp, err = stdouttrace.New(stdouttrace.WithWriter(stdout))
		}
		if err != nil {
			return nil, fmt.Errorf("%s trace exporter: %w", e, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// traceExporters resolves mode to the exporters to run: "otlp", "console", or none.
func traceExporters(mode string, lookup func(string) (string, bool)) ([]string, error) {
	switch mode {
	case "none":
		return nil, nil
	case "otlp":
		return []string{"otlp"}, nil
	case "stdout", "console":
		return []string{"console"}, nil
	case "auto", "":
	default:
		return nil, fmt.Errorf("-otel %q: want auto, otlp, stdout or none", mode)
	}
	if v, ok := lookup("OTEL_TRACES_EXPORTER"); ok && strings.TrimSpace(v) != "" {
		var out []string
		for _, e := range strings.Split(v, ",") {
			switch e = strings.TrimSpace(e); e {
			case "none":
				return nil, nil
			case "otlp", "console":
				out = append(out, e)
			default:
				return nil, fmt.Errorf("OTEL_TRACES_EXPORTER %q: %q is not one of otlp, console, none", v, e)
			}
		}
		return out, nil
	}
	// Without OTEL_TRACES_EXPORTER the SDK default would be OTLP to localhost, which fails every
	// few seconds where there is no collector: export only when an endpoint is given.
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if v, ok := lookup(k); ok && v != "" {
			return []string{"otlp"}, nil
		}
	}
	return nil, nil
}

// newOTLPExporter makes the OTLP exporter of the protocol the environment asks for.
func newOTLPExporter(ctx context.Context, lookup func(string) (string, bool)) (sdktrace.SpanExporter, error) {
	get := func(k string) string { v, _ := lookup(k); return v }
	switch protocol := cmp.Or(get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), get("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf"); protocol {
	case "grpc":
		return newOTLPGRPCExporter(ctx)
	case "http/protobuf", "http/json":
		return otlptracehttp.New(ctx) // reads the protocol itself
	default:
		return nil, fmt.Errorf("OTLP protocol %q: want http/protobuf, http/json or grpc", protocol)
	}
}

// newLogger returns a JSON logger at level that adds trace_id and span_id to records logged with
// a context carrying a span.
func newLogger(w io.Writer, level, service string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", level, err)
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})
	return slog.New(traceHandler{h}).With("service", service), nil
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
