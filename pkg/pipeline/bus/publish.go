// Package bus is the at-least-once machinery every stage uses on JetStream: publishing protobuf
// messages with a deterministic Nats-Msg-Id and the trace context, and consuming them with one
// classification of errors that decides Ack, Nak with delay, or Term plus a dead letter.
package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Headers every published message carries besides Nats-Msg-Id and traceparent.
const (
	// HeaderContentType is ContentTypeProtobuf on every message of the pipeline.
	HeaderContentType = "Content-Type"
	// HeaderType is the full protobuf name of the payload, e.g. "amrpipe.v1.RecordBatch", so that
	// a dead letter or amrctl can decode a message without knowing its subject.
	HeaderType = "Amr-Type"
	// ContentTypeProtobuf is the value of HeaderContentType.
	ContentTypeProtobuf = "application/protobuf"
)

// ErrNoMsgID is returned when a publish has no message id: every publish of the pipeline must be
// de-duplicable.
var ErrNoMsgID = errors.New("publish without a Nats-Msg-Id")

// propagator writes and reads the W3C trace context (lower-case traceparent, tracestate).
var propagator = propagation.TraceContext{}

// headerCarrier adapts nats.Header to the propagator. nats.Header keys are case-sensitive and
// Set keeps the key as given, so the header goes out as lower-case "traceparent".
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string {
	if v := nats.Header(h).Get(key); v != "" {
		return v
	}
	for k, v := range h { // a producer that canonicalised the key ("Traceparent")
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { h[key] = []string{value} }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// InjectTrace writes ctx's trace context into h.
func InjectTrace(ctx context.Context, h nats.Header) { propagator.Inject(ctx, headerCarrier(h)) }

// ExtractTrace returns ctx carrying the remote trace context found in h, if any.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	return propagator.Extract(ctx, headerCarrier(h))
}

// NewMsg builds the NATS message for a pipeline publish: the protobuf payload, Nats-Msg-Id,
// content type, payload type and the trace context of ctx.
func NewMsg(ctx context.Context, subject string, m proto.Message, msgID string) (*nats.Msg, error) {
	if msgID == "" {
		return nil, fmt.Errorf("%s: %w", subject, ErrNoMsgID)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s for %s: %w", m.ProtoReflect().Descriptor().FullName(), subject, err)
	}
	return NewEncodedMsg(ctx, subject, m.ProtoReflect().Descriptor().FullName(), data, msgID)
}

// NewEncodedMsg is NewMsg for a payload its producer encoded itself (the parser writes each
// record into its batch once, as it frames it): data must be the protobuf encoding of a message
// of type typ.
func NewEncodedMsg(ctx context.Context, subject string, typ protoreflect.FullName, data []byte, msgID string) (*nats.Msg, error) {
	if msgID == "" {
		return nil, fmt.Errorf("%s: %w", subject, ErrNoMsgID)
	}
	h := nats.Header{}
	h.Set(jetstream.MsgIDHeader, msgID)
	h.Set(HeaderContentType, ContentTypeProtobuf)
	h.Set(HeaderType, string(typ))
	InjectTrace(ctx, h)
	return &nats.Msg{Subject: subject, Data: data, Header: h}, nil
}

// Publish publishes m on subject and waits for the stream's acknowledgement. msgID must be
// deterministic (derived from the input), so that a redelivered input republishes nothing new:
// the returned PubAck then has Duplicate set. Within a trace the publish has its producer span,
// the parent of the consumer's.
func Publish(ctx context.Context, js jetstream.JetStream, subject string, m proto.Message, msgID string, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	msg, err := NewMsg(ctx, subject, m, msgID)
	if err != nil {
		return nil, err
	}
	ctx, span := startSend(ctx, msg)
	ack, err := js.PublishMsg(ctx, msg, opts...)
	endSend(span, ack, err)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", subject, err)
	}
	return ack, nil
}

// Decode unmarshals msg's payload into m. A payload that does not decode, or whose Amr-Type
// header names another message, can never succeed: the error is Permanent.
func Decode(msg jetstream.Msg, m proto.Message) error {
	want := string(m.ProtoReflect().Descriptor().FullName())
	if got := msg.Headers().Get(HeaderType); got != "" && got != want {
		return &Permanent{Reason: fmt.Sprintf("payload is %s, want %s", got, want)}
	}
	if err := proto.Unmarshal(msg.Data(), m); err != nil {
		return &Permanent{Reason: "undecodable " + want, Err: err}
	}
	return nil
}
