package amrevent

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// EventID returns a deterministic identity for ev, so that an event seen on
// both the Azure queue and GetMigrationJobProgress is published once.
//
// Two events are the same when they have the same event name (case-folded),
// JobId and CorrelationId (case-folded GUIDs), Time (the same instant, however
// it was written), the same typed payload values, and the same extra fields
// and values. Re-encodings do not change it: key order, key case, number or
// boolean spelling ("0"/0, "False"/false), time format, whitespace in nested
// stats JSON, and a zero value sent versus left out (proto3 cannot tell them
// apart) all give the same ID. The ID is the first 128 bits of a SHA-256 over
// sorted "name=value" lines, in hex.
func EventID(ev *amrpipev1.MigrationEvent) string {
	name := ev.GetRawName()
	if name == "" {
		name = strings.TrimPrefix(ev.GetType().String(), eventTypePrefix)
	}
	lines := []string{
		line(keyEvent, strings.ToLower(strings.TrimSpace(name))),
		line(keyJobID, strings.ToLower(ev.GetJobId())),
		line(keyCorrelationID, strings.ToLower(ev.GetCorrelationId())),
	}
	if ev.GetTime() != nil {
		lines = append(lines, line(keyTime, ev.GetTime().AsTime().Format(time.RFC3339Nano)))
	}
	if oneof := ev.ProtoReflect().WhichOneof(ev.ProtoReflect().Descriptor().Oneofs().ByName("payload")); oneof != nil {
		lines = canonicalFields(lines, "", ev.ProtoReflect().Get(oneof).Message())
	}
	for k, v := range ev.GetExtra() {
		lines = append(lines, line(normalize(k), v))
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:16])
}

// canonicalFields appends one line per populated field of m (proto3 skips
// zero values), nested stats as "<field>.<key>.<name>".
func canonicalFields(lines []string, prefix string, m protoreflect.Message) []string {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + normalize(string(fd.Name()))
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				lines = canonicalFields(lines, name+"."+k.String()+".", mv.Message())
				return true
			})
		default:
			lines = append(lines, line(name, scalarString(fd, v)))
		}
		return true
	})
	return lines
}

// scalarString renders a populated scalar or timestamp field canonically.
func scalarString(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case protoreflect.MessageKind:
		if ts, ok := v.Message().Interface().(*timestamppb.Timestamp); ok {
			return ts.AsTime().Format(time.RFC3339Nano)
		}
	}
	return v.String()
}

func line(name, value string) string { return name + "=" + strconv.Quote(value) }
