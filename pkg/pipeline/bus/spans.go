package bus

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the bus's spans.
const tracerName = "github.com/amrpipe/amrpipe/pkg/pipeline/bus"

// messagingSystem is messaging.system of every span of the bus (not one of the convention's
// listed values, which it allows).
var messagingSystem = semconv.MessagingSystemKey.String("nats")

// startSend starts the producer span of a publish of msg (OpenTelemetry messaging conventions,
// operation "send") and writes its context into msg's traceparent, so that the consumer's span
// is its child. The tracer is the one of the span ctx carries (a handler's, or a caller's root
// span): a publish outside any trace makes no span, as before.
func startSend(ctx context.Context, msg *nats.Msg) (context.Context, trace.Span) {
	tp := trace.SpanFromContext(ctx).TracerProvider()
	ctx, span := tp.Tracer(tracerName).Start(ctx, "send "+subjectFamily(msg.Subject),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			messagingSystem,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(msg.Subject),
			semconv.MessagingMessageID(msg.Header.Get(jetstream.MsgIDHeader)),
			semconv.MessagingMessageBodySize(len(msg.Data)),
		))
	if span.SpanContext().IsValid() {
		InjectTrace(ctx, msg.Header)
	}
	return ctx, span
}

// endSend ends a producer span with the stream's acknowledgement or the failure.
func endSend(span trace.Span, ack *jetstream.PubAck, err error) {
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
	case ack != nil:
		span.SetAttributes(attribute.String("messaging.nats.stream", ack.Stream), attribute.Int64("amr.stream.sequence", int64(ack.Sequence)),
			attribute.Bool("amr.duplicate", ack.Duplicate))
	}
	span.End()
}

// subjectFamily is the first two tokens of a subject ("amr.records" of
// "amr.records.<jobID>"): span names stay few while the attributes carry the full subject.
func subjectFamily(subject string) string {
	if i := strings.IndexByte(subject, '.'); i >= 0 {
		if j := strings.IndexByte(subject[i+1:], '.'); j >= 0 {
			return subject[:i+1+j]
		}
	}
	return subject
}
