// Package amrevent decodes SharePoint migration events: the JSON objects that
// arrive on the Azure queue (plain or in the encrypted {Label, JobId, IV,
// Content} envelope) and as GetMigrationJobProgress Logs strings, into
// amrpipe.v1.MigrationEvent. It also gives each event a deterministic identity
// for de-duplicating the two sources, and encodes events back to the wire form.
//
// Wire fields map onto proto fields by name: a wire key matches the proto
// field whose name, without underscores, equals the key case-insensitively
// ("TotalExpectedSPObjects" is total_expected_sp_objects, "DBId" and "DbId"
// are db_id). Keys that match nothing are kept in MigrationEvent.extra.
package amrevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Errors of DecodeEvent; a bad value in a known field is a *FieldError.
var (
	ErrNotJSON     = errors.New("amrevent: not a JSON object")
	ErrNoEventName = errors.New("amrevent: no Event name")
	ErrTooLarge    = errors.New("amrevent: event over its bounds")
)

// Bounds of an event, which comes from outside. SharePoint's events are a few hundred bytes of
// short fields (an Azure queue message is at most 64 KiB), their names single words.
const (
	// MaxEventBytes bounds the JSON of one event.
	MaxEventBytes = 64 << 10
	// MaxNameBytes bounds the Event name.
	MaxNameBytes = 64
	// MaxFields bounds the fields of one event, nested stats included.
	MaxFields = 512
)

// FieldError reports a value of a modelled field that does not parse (a bad
// time, number or boolean, or malformed nested stats JSON).
type FieldError struct {
	Field string // wire key; nested stats as "ObjectsStatsByType.SPFile.Count"
	Value string // the value as sent
	Err   error  // the parse error
}

func (e *FieldError) Error() string {
	v := e.Value
	if len(v) > 64 {
		v = v[:64] + "…"
	}
	return fmt.Sprintf("amrevent: field %s: bad value %q: %v", e.Field, v, e.Err)
}

// Unwrap returns the parse error.
func (e *FieldError) Unwrap() error { return e.Err }

// Keys of the fields every event has (compared after normalize), and the
// spelling SharePoint uses for them.
const (
	keyEvent         = "event"
	keyJobID         = "jobid"
	keyTime          = "time"
	keyCorrelationID = "correlationid"
	eventTypePrefix  = "EVENT_TYPE_"
)

var commonWireNames = map[string]string{
	keyEvent:         "Event",
	keyJobID:         "JobId",
	keyTime:          "Time",
	keyCorrelationID: "CorrelationId",
}

// DecodeEvent decodes one event: a JSON object whose values are strings (JSON
// numbers, booleans and null are tolerated), within MaxEventBytes, MaxFields and
// MaxNameBytes (ErrTooLarge otherwise). Times are read as UTC. A value
// that does not parse in a modelled field is an error; unknown fields go to
// Extra, so nothing is dropped. If a field is sent under two spellings
// ("DbId" and "DBId"), SharePoint's own spelling is decoded and the other is
// kept in Extra.
func DecodeEvent(data []byte) (*amrpipev1.MigrationEvent, error) {
	if len(data) > MaxEventBytes {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(data), MaxEventBytes)
	}
	obj, err := parseObject(data)
	if err != nil {
		return nil, err
	}
	if len(obj) > MaxFields {
		return nil, fmt.Errorf("%w: %d fields, over %d", ErrTooLarge, len(obj), MaxFields)
	}
	ev := &amrpipev1.MigrationEvent{}
	eventKey := firstKey(obj, keyEvent, commonWireNames[keyEvent])
	if eventKey != "" {
		ev.RawName, _ = scalarText(obj[eventKey])
	}
	if strings.TrimSpace(ev.RawName) == "" {
		return nil, ErrNoEventName
	}
	if len(ev.RawName) > MaxNameBytes {
		return nil, fmt.Errorf("%w: an Event name of %d bytes, over %d", ErrTooLarge, len(ev.RawName), MaxNameBytes)
	}
	var payload protoreflect.Message
	ev.Type, payload = newPayload(ev, strings.TrimSpace(ev.RawName))
	fields := map[string]protoreflect.FieldDescriptor{}
	if payload != nil {
		fields = fieldIndex(payload.Descriptor())
	}
	canonical := func(norm string) string {
		if fd, ok := fields[norm]; ok {
			return wireName(fd)
		}
		return commonWireNames[norm]
	}

	seen := map[string]bool{keyEvent: true} // normalised keys decoded so far
	for _, k := range orderKeys(obj, canonical) {
		if k == eventKey {
			continue
		}
		v, n := obj[k], normalize(k)
		if seen[n] {
			ev.Extra = addExtra(ev.Extra, k, v)
			continue
		}
		seen[n] = true
		switch n {
		case keyJobID:
			ev.JobId, _ = scalarText(v)
		case keyCorrelationID:
			ev.CorrelationId, _ = scalarText(v)
		case keyTime:
			s, _ := scalarText(v)
			if strings.TrimSpace(s) == "" {
				continue
			}
			t, err := parseTime(s)
			if err != nil {
				return nil, &FieldError{Field: k, Value: s, Err: err}
			}
			ev.Time = timestamppb.New(t)
		default:
			fd, ok := fields[n]
			if !ok {
				ev.Extra = addExtra(ev.Extra, k, v)
				continue
			}
			if err := setField(payload, fd, k, v, &ev.Extra); err != nil {
				return nil, err
			}
		}
	}
	return ev, nil
}

// firstKey returns the key of obj that is decoded as field norm: the
// canonical spelling if present, else the first in byte order; "" if none.
func firstKey[V any](obj map[string]V, norm, canonical string) string {
	for _, k := range orderKeys(obj, func(string) string { return canonical }) {
		if normalize(k) == norm {
			return k
		}
	}
	return ""
}

// orderKeys sorts the keys of m so that the spellings of one field are
// adjacent, its canonical spelling (canonical(normalised key), the one
// EncodeEvent writes) first and the rest in byte order.
func orderKeys[V any](m map[string]V, canonical func(norm string) string) []string {
	keys := sortedKeys(m)
	slices.SortStableFunc(keys, func(a, b string) int {
		na, nb := normalize(a), normalize(b)
		if c := strings.Compare(na, nb); c != 0 {
			return c
		}
		ca, cb := a == canonical(na), b == canonical(nb)
		switch {
		case ca && !cb:
			return -1
		case cb && !ca:
			return 1
		}
		return 0
	})
	return keys
}

// newPayload maps an event name onto its type and sets (and returns) the
// matching oneof message. Payload field names follow the enum value names
// (EVENT_TYPE_JOB_END is job_end, wire name "JobEnd").
func newPayload(ev *amrpipev1.MigrationEvent, name string) (amrpipev1.EventType, protoreflect.Message) {
	m := ev.ProtoReflect()
	values := amrpipev1.EventType(0).Descriptor().Values()
	for i := range values.Len() {
		typ := amrpipev1.EventType(values.Get(i).Number())
		field := strings.ToLower(strings.TrimPrefix(string(values.Get(i).Name()), eventTypePrefix))
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(field))
		if fd == nil || fd.ContainingOneof() == nil || normalize(field) != normalize(name) {
			continue
		}
		payload := m.NewField(fd)
		m.Set(fd, payload)
		return typ, payload.Message()
	}
	return amrpipev1.EventType_EVENT_TYPE_UNKNOWN, nil
}

// fieldIndex maps normalised field names of md onto their descriptors.
func fieldIndex(md protoreflect.MessageDescriptor) map[string]protoreflect.FieldDescriptor {
	idx := make(map[string]protoreflect.FieldDescriptor, md.Fields().Len())
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		idx[normalize(string(fd.Name()))] = fd
	}
	return idx
}

// normalize folds a wire key or proto field name for matching.
func normalize(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }

// setField decodes one wire value into field fd of m. Empty values of
// non-string fields count as absent (the docs show "JobsInQueue:" empty).
func setField(m protoreflect.Message, fd protoreflect.FieldDescriptor, key string, v any, extra *map[string]string) error {
	if fd.IsMap() {
		return setStatsMap(m, fd, key, v, extra)
	}
	s, ok := scalarText(v)
	if !ok {
		return &FieldError{Field: key, Value: s, Err: errors.New("want a scalar, got JSON " + jsonKind(v))}
	}
	if fd.Kind() == protoreflect.StringKind {
		m.Set(fd, protoreflect.ValueOfString(s))
		return nil
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	val, err := parseScalar(fd, s)
	if err != nil {
		return &FieldError{Field: key, Value: s, Err: err}
	}
	m.Set(fd, val)
	return nil
}

// parseScalar parses the typed kinds the event messages use.
func parseScalar(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.Int64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		return protoreflect.ValueOfInt64(n), err
	case protoreflect.DoubleKind:
		f, err := strconv.ParseFloat(s, 64)
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			err = errors.New("not a finite number")
		}
		return protoreflect.ValueOfFloat64(f), err
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		return protoreflect.ValueOfBool(b), err
	case protoreflect.MessageKind:
		if fd.Message().FullName() == timestampName {
			t, err := parseTime(s)
			if err != nil {
				return protoreflect.Value{}, err
			}
			return protoreflect.ValueOfMessage(timestamppb.New(t).ProtoReflect()), nil
		}
	}
	return protoreflect.Value{}, fmt.Errorf("unsupported field kind %v", fd.Kind())
}

const timestampName = "google.protobuf.Timestamp"

// setStatsMap decodes a stats field: a JSON object (usually itself sent as a
// JSON string) of objects, e.g. {"SPFile":{"Count":200,"TotalTime":6765}}.
func setStatsMap(m protoreflect.Message, fd protoreflect.FieldDescriptor, key string, v any, extra *map[string]string) error {
	if s, ok := v.(string); ok {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		inner, err := parseObject([]byte(s))
		if err != nil {
			return &FieldError{Field: key, Value: s, Err: err}
		}
		v = inner
	}
	obj, ok := v.(map[string]any)
	if !ok {
		s, _ := scalarText(v)
		return &FieldError{Field: key, Value: s, Err: errors.New("want a JSON object, got JSON " + jsonKind(v))}
	}
	mp := m.Mutable(fd).Map()
	for _, bucket := range sortedKeys(obj) {
		entry, ok := obj[bucket].(map[string]any)
		path := key + "." + bucket
		if !ok {
			s, _ := scalarText(obj[bucket])
			return &FieldError{Field: path, Value: s, Err: errors.New("want a JSON object, got JSON " + jsonKind(obj[bucket]))}
		}
		val := mp.NewValue()
		fields := fieldIndex(val.Message().Descriptor())
		canonical := func(norm string) string {
			if fd, ok := fields[norm]; ok {
				return wireName(fd)
			}
			return ""
		}
		seen := map[string]bool{}
		for _, k := range orderKeys(entry, canonical) {
			sub, ok := fields[normalize(k)]
			if !ok || seen[normalize(k)] {
				*extra = addExtra(*extra, path+"."+k, entry[k])
				continue
			}
			seen[normalize(k)] = true
			if err := setField(val.Message(), sub, path+"."+k, entry[k], extra); err != nil {
				return err
			}
		}
		mp.Set(protoreflect.ValueOfString(bucket).MapKey(), val)
	}
	return nil
}

// parseObject decodes a JSON object, keeping numbers as json.Number.
func parseObject(data []byte) (map[string]any, error) {
	data = bytes.TrimPrefix(bytes.TrimSpace(data), []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: invalid UTF-8", ErrNotJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the object", ErrNotJSON)
	}
	return obj, nil
}

// scalarText renders a JSON value as the string SharePoint would have sent;
// ok is false for objects and arrays (rendered as compact JSON).
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case nil:
		return "", true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v), false
	}
	return string(b), false
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "scalar"
}

func addExtra(extra map[string]string, key string, v any) map[string]string {
	if extra == nil {
		extra = map[string]string{}
	}
	extra[key], _ = scalarText(v)
	return extra
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
