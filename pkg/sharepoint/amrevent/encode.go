package amrevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// ErrNoEventType is returned by EncodeEvent for an event without a name.
var ErrNoEventType = errors.New("amrevent: event has neither a type nor a raw name")

// wireNames lists the wire keys that are not the PascalCase of the field name.
var wireNames = map[string]string{
	"total_expected_sp_objects": "TotalExpectedSPObjects",
}

// EncodeEvent renders ev in SharePoint's wire form: a flat JSON object whose
// values are all strings, times as MM/dd/yyyy HH:mm:ss.fff UTC, booleans as
// "True"/"False", stats as JSON inside a string. Every field of the payload
// message is written, zero or not, as SharePoint does; Extra is written back
// (nested "<Field>.<Key>.<Name>" entries inside their stats object).
// DecodeEvent(EncodeEvent(ev)) equals ev.
func EncodeEvent(ev *amrpipev1.MigrationEvent) ([]byte, error) {
	name := ev.GetRawName()
	if name == "" && ev.GetType() != amrpipev1.EventType_EVENT_TYPE_UNSPECIFIED && ev.GetType() != amrpipev1.EventType_EVENT_TYPE_UNKNOWN {
		name = pascal(strings.ToLower(strings.TrimPrefix(ev.GetType().String(), eventTypePrefix)))
	}
	if name == "" {
		return nil, ErrNoEventType
	}
	extra := ev.GetExtra()
	used := map[string]bool{}
	w := &objectWriter{}
	w.field(commonWireNames[keyEvent], name)
	w.field(commonWireNames[keyJobID], ev.GetJobId())
	if ev.GetTime() != nil {
		w.field(commonWireNames[keyTime], formatTime(ev.GetTime().AsTime()))
	}
	m := ev.ProtoReflect()
	if oneof := m.WhichOneof(m.Descriptor().Oneofs().ByName("payload")); oneof != nil {
		payload := m.Get(oneof).Message()
		fields := payload.Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			key := wireName(fd)
			if fd.IsMap() {
				w.field(key, statsJSON(key, payload.Get(fd).Map(), extra, used))
				continue
			}
			if v, ok := wireValue(fd, payload.Get(fd), payload.Has(fd)); ok {
				w.field(key, v)
			}
		}
	}
	if ev.GetCorrelationId() != "" {
		w.field(commonWireNames[keyCorrelationID], ev.GetCorrelationId())
	}
	for _, k := range sortedKeys(extra) {
		if !used[k] {
			w.field(k, extra[k])
		}
	}
	return w.close(), nil
}

// wireName is the wire key of a payload field.
func wireName(fd protoreflect.FieldDescriptor) string {
	if n, ok := wireNames[string(fd.Name())]; ok {
		return n
	}
	return pascal(string(fd.Name()))
}

// pascal turns snake_case into PascalCase.
func pascal(s string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(s, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// wireValue renders a scalar or timestamp field; unset timestamps are omitted.
func wireValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, has bool) (string, bool) {
	switch fd.Kind() {
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64), true
	case protoreflect.BoolKind:
		if v.Bool() {
			return "True", true
		}
		return "False", true
	case protoreflect.MessageKind:
		ts, ok := v.Message().Interface().(*timestamppb.Timestamp)
		if !has || !ok {
			return "", false
		}
		return formatTime(ts.AsTime()), true
	}
	return v.String(), true
}

// statsJSON renders a stats map as the JSON text SharePoint nests in a string,
// with numbers as JSON numbers and any extra "<key>.<bucket>.<name>" entries
// (marked in used) back in their bucket.
func statsJSON(key string, mp protoreflect.Map, extra map[string]string, used map[string]bool) string {
	buckets := map[string]protoreflect.Message{}
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		buckets[k.String()] = v.Message()
		return true
	})
	outer := &objectWriter{}
	for _, bucket := range sortedKeys(buckets) {
		inner := &objectWriter{}
		msg := buckets[bucket]
		fields := msg.Descriptor().Fields()
		written := map[string]bool{}
		for i := range fields.Len() {
			fd := fields.Get(i)
			v, _ := wireValue(fd, msg.Get(fd), true)
			inner.raw(wireName(fd), v)
			written[wireName(fd)] = true
		}
		prefix := key + "." + bucket + "."
		for _, k := range sortedKeys(extra) {
			// A name already written stays a top-level key (it came as one).
			if name, ok := strings.CutPrefix(k, prefix); ok && !strings.Contains(name, ".") && !written[name] {
				inner.field(name, extra[k])
				used[k] = true
			}
		}
		outer.raw(bucket, string(inner.close()))
	}
	return string(outer.close())
}

// objectWriter writes a JSON object with keys in call order.
type objectWriter struct{ buf bytes.Buffer }

// field writes a string value.
func (w *objectWriter) field(k, v string) { w.raw(k, string(quote(v))) }

// raw writes a value that is already JSON.
func (w *objectWriter) raw(k, v string) {
	if w.buf.Len() == 0 {
		w.buf.WriteByte('{')
	} else {
		w.buf.WriteByte(',')
	}
	w.buf.Write(quote(k))
	w.buf.WriteByte(':')
	w.buf.WriteString(v)
}

func (w *objectWriter) close() []byte {
	if w.buf.Len() == 0 {
		return []byte("{}")
	}
	w.buf.WriteByte('}')
	return w.buf.Bytes()
}

func quote(s string) []byte {
	b, _ := json.Marshal(s) // marshalling a string cannot fail
	return b
}
