package storage

import (
	"net/http"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	amrsas "github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

// tracerName is the instrumentation scope of the storage spans.
const tracerName = "github.com/amrpipe/amrpipe/pkg/sharepoint/storage"

// Span attributes naming the storage operation besides the HTTP method: the URL's restype and
// comp parameters ("container", "list"), which name an operation and carry no secret.
const (
	AttrRestype = attribute.Key("azure.storage.restype")
	AttrComp    = attribute.Key("azure.storage.comp")
)

// TracePolicy returns a pipeline policy that makes a client span of every HTTP try of a blob or
// queue client (service "blob" or "queue"), following the HTTP client conventions. The storage
// SDKs make no spans of their own (their azcore TracingProvider goes unused, so the azotel
// adapter would add nothing). The tracer is the one of the span the call's ctx carries (the
// handler's): a call outside any trace makes none. Only host and path are recorded: a query (a
// SAS) never is.
func TracePolicy(service string) policy.Policy { return tracePolicy{service: service} }

type tracePolicy struct{ service string }

func (p tracePolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(raw.Method),
		semconv.ServerAddress(raw.URL.Hostname()),
		semconv.URLScheme(raw.URL.Scheme),
		semconv.URLPath(amrsas.Redact(raw.URL.EscapedPath())),
	}
	if port, err := strconv.Atoi(raw.URL.Port()); err == nil {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	q := raw.URL.Query()
	if v := q.Get("restype"); v != "" {
		attrs = append(attrs, AttrRestype.String(v))
	}
	if v := q.Get("comp"); v != "" {
		attrs = append(attrs, AttrComp.String(v))
	}
	ctx := raw.Context()
	_, span := trace.SpanFromContext(ctx).TracerProvider().Tracer(tracerName).Start(ctx, p.service+" "+raw.Method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	defer span.End()
	resp, err := req.Next()
	switch {
	case err != nil:
		// The SDK's error text may quote the request URL: only its type is kept.
		span.SetAttributes(semconv.ErrorTypeKey.String("transport"))
		span.SetStatus(codes.Error, "transport")
	case resp.StatusCode >= 400:
		span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode), semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
		span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
	default:
		span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	}
	return resp, err
}
