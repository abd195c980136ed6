package spo

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

// tracerName is the instrumentation scope of the client's spans.
const tracerName = "github.com/amrpipe/amrpipe/pkg/sharepoint/spo"

// AttrMethod is the span attribute naming the SharePoint REST method of a call
// ("CreateSPAsyncReadJob"); the span is named after it too.
const AttrMethod = attribute.Key("sharepoint.method")

// startCallSpan starts the client span of one REST call (OpenTelemetry HTTP client
// conventions). It records the path and never the query (aliases, continuation tokens) or the
// body (SAS URLs). The tracer is the one of the span ctx carries: the handler's that made the
// call; a call outside any trace makes no span.
func startCallSpan(ctx context.Context, cl *call, u *url.URL) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(cl.verb),
		semconv.ServerAddress(u.Hostname()),
		semconv.URLPath(sas.Redact(u.EscapedPath())),
		semconv.URLScheme(u.Scheme),
		AttrMethod.String(cl.method),
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		attrs = append(attrs, semconv.ServerPort(p))
	}
	return trace.SpanFromContext(ctx).TracerProvider().Tracer(tracerName).Start(ctx, cl.method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endCallSpan ends a call's span with SharePoint's status (0: no answer) and the call's error,
// whose text the client has already scrubbed of secrets.
func endCallSpan(span trace.Span, status int, err error) {
	if status != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	if err != nil {
		typ := "transport"
		var e *Error
		if errors.As(err, &e) {
			typ = strconv.Itoa(e.Status)
		} else if errors.Is(err, ErrInvalidRequest) {
			typ = "invalid_request"
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(typ))
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, typ)
	}
	span.End()
}
