// Package deadletter reads, decodes and replays the pipeline's dead letters: the messages a stage
// gave up on, kept in AMR_DLQ on amr.dlq.<stage> as amrpipev1.DeadLetter (pkg/pipeline/bus).
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Letter is one dead letter and where it is stored.
type Letter struct {
	// Seq is its sequence in AMR_DLQ: the id `amrctl dlq show|replay` take.
	Seq uint64
	*amrpipev1.DeadLetter
}

// ErrNotFound is returned for a sequence that holds no dead letter.
var ErrNotFound = errors.New("no such dead letter")

// ErrNotReplayable is returned for a dead letter that did not come from a pipeline subject (the
// relay's records of queue messages and unknown progress events): there is nothing to republish.
var ErrNotReplayable = errors.New("not replayable")

// Filter selects dead letters: of one stage ("" every stage), stored at or after Since (zero:
// all).
type Filter struct {
	Stage string
	Since time.Time
}

// List reads the dead letters Filter selects, in stream order, through an ordered consumer (no
// durable state is left on the server; the dead letters stay).
func List(ctx context.Context, js jetstream.JetStream, f Filter) ([]Letter, error) {
	subject := topology.DLQSubject("*")
	if f.Stage != "" {
		if err := topology.CheckToken(f.Stage); err != nil {
			return nil, fmt.Errorf("stage %q: %w", f.Stage, err)
		}
		subject = topology.DLQSubject(f.Stage)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
	if !f.Since.IsZero() {
		since := f.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	var out []Letter
	err := bus.ReadStored(ctx, js, topology.StreamDLQ, cfg, 500, func(msg jetstream.Msg) error {
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", topology.StreamDLQ, err)
		}
		l, err := decodeLetter(meta.Sequence.Stream, msg.Data())
		if err != nil {
			return err
		}
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Get reads the dead letter at seq; ErrNotFound when there is none.
func Get(ctx context.Context, js jetstream.JetStream, seq uint64) (Letter, error) {
	str, err := js.Stream(ctx, topology.StreamDLQ)
	if err != nil {
		return Letter{}, fmt.Errorf("stream %s: %w", topology.StreamDLQ, err)
	}
	raw, err := str.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return decodeLetter(seq, raw.Data)
}

func decodeLetter(seq uint64, data []byte) (Letter, error) {
	dl := &amrpipev1.DeadLetter{}
	if err := proto.Unmarshal(data, dl); err != nil {
		return Letter{}, fmt.Errorf("dead letter %d does not decode: %w", seq, err)
	}
	return Letter{Seq: seq, DeadLetter: dl}, nil
}

// subjectTypes is which message each pipeline subject carries (pkg/pipeline/topology), for dead
// letters without the Amr-Type header. Longest prefix first.
var subjectTypes = []struct {
	prefix string
	msg    proto.Message
}{
	{topology.SubjectPlanSubmit, &amrpipev1.PlanRequest{}},
	{topology.SubjectPlanProbe, &amrpipev1.ProbeResult{}},
	{"amr.specs.", &amrpipev1.JobSpec{}},
	{"amr.jobs.submitted.", &amrpipev1.SubmittedJob{}},
	{"amr.jobs.due.", &amrpipev1.PollTimer{}},
	{"amr.jobs.schedule.", &amrpipev1.PollTimer{}},
	{"amr.events.", &amrpipev1.RelayedEvent{}},
	{"amr.manifests.", &amrpipev1.ManifestReady{}},
	{"amr.records.", &amrpipev1.RecordBatch{}},
	{"amr.done.", &amrpipev1.JobSummary{}},
}

// Payload decodes the original message: by its Amr-Type header, else by its subject. It returns
// nil when the payload is not a message of the pipeline (the relay's raw queue and progress text).
func (l Letter) Payload() proto.Message {
	var m proto.Message
	if t := l.GetHeaders()[bus.HeaderType]; t != "" {
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(t)); err == nil {
			m = mt.New().Interface()
		}
	}
	if m == nil {
		for _, st := range subjectTypes {
			if strings.HasPrefix(l.GetSubject(), st.prefix) {
				m = st.msg.ProtoReflect().New().Interface()
				break
			}
		}
	}
	if m == nil || proto.Unmarshal(l.GetPayload(), m) != nil {
		return nil
	}
	return m
}

// IDs are the job, spec and plan the dead letter concerns, as far as its payload and subject say.
type IDs struct {
	Job, Spec, Plan string
}

// IDs finds the job, spec and plan ids in the payload (its own job_id, spec_id and plan_id
// fields, else those of the messages it holds: a SubmittedJob's spec, a PollTimer's job) and
// the job id in the subject.
func (l Letter) IDs() IDs {
	var ids IDs
	if m := l.Payload(); m != nil {
		collectIDs(m.ProtoReflect(), &ids, 3)
	}
	if ids.Job == "" {
		if job, err := topology.SubjectJob(l.GetSubject()); err == nil {
			ids.Job = job
		}
	}
	return ids
}

func collectIDs(m protoreflect.Message, ids *IDs, depth int) {
	fields := m.Descriptor().Fields()
	for name, dst := range map[protoreflect.Name]*string{"job_id": &ids.Job, "spec_id": &ids.Spec, "plan_id": &ids.Plan} {
		if fd := fields.ByName(name); fd != nil && fd.Kind() == protoreflect.StringKind && *dst == "" {
			*dst = m.Get(fd).String()
		}
	}
	if depth == 0 {
		return
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && m.Has(fd) {
			collectIDs(m.Get(fd).Message(), ids, depth-1)
		}
	}
}

// ReplayMsgID is the Nats-Msg-Id of a dead letter's replay: derived from where the dead letter
// is stored, so that replaying it twice (a replay whose delete was lost) publishes once within
// the stream's duplicate window, while the original's id (which the stream may still remember)
// does not hide the replay.
func ReplayMsgID(l Letter) string {
	return "replay/" + topology.StreamDLQ + "/" + strconv.FormatUint(l.Seq, 10)
}

// Replay republishes the dead letter's payload on its original subject with its original headers
// (server-interpreted Nats-* headers left out, Nats-Msg-Id replaced by ReplayMsgID), and deletes
// the dead letter only once the publish is acknowledged: a failure in between leaves it to replay
// again, and the new id makes that second publish a duplicate.
func Replay(ctx context.Context, js jetstream.JetStream, l Letter) (*jetstream.PubAck, error) {
	subject := l.GetSubject()
	if !strings.HasPrefix(subject, "amr.") || strings.HasPrefix(subject, "amr.dlq.") {
		return nil, fmt.Errorf("dead letter %d (from %q): %w: it was not a message on a pipeline subject", l.Seq, subject, ErrNotReplayable)
	}
	msg := nats.NewMsg(subject)
	msg.Data = l.GetPayload()
	for k, v := range l.GetHeaders() {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		msg.Header.Set(k, v)
	}
	msg.Header.Set(jetstream.MsgIDHeader, ReplayMsgID(l))
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("replay dead letter %d on %s: %w", l.Seq, subject, err)
	}
	str, err := js.Stream(ctx, topology.StreamDLQ)
	if err == nil {
		err = str.DeleteMsg(ctx, l.Seq)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return ack, fmt.Errorf("dead letter %d replayed (stream %s sequence %d) but not deleted: %w", l.Seq, ack.Stream, ack.Sequence, err)
	}
	return ack, nil
}
