package parser

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/manifestcopy"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// harness is an embedded JetStream with the topology, where tests play the decryptor and the
// relay (object store files, ManifestReady, JobRecords, end events) around parser replicas.
type harness struct {
	t       testing.TB
	env     *testenv.JetStream
	store   *jobstore.Store
	objects jetstream.ObjectStore
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, env: testenv.StartJetStream(t)}
	h.open()
	return h
}

// open binds the job store and the object store on the harness's server.
func (h *harness) open() {
	h.t.Helper()
	ctx := context.Background()
	var err error
	if h.store, err = jobstore.Open(ctx, h.env.JS, nil); err != nil {
		h.t.Fatal(err)
	}
	if h.objects, err = h.env.JS.ObjectStore(ctx, topology.ObjectManifests); err != nil {
		h.t.Fatal(err)
	}
}

// logBuffer collects a replica's log; it is printed when the test fails.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// startParser runs one parser replica on its own connection until the test ends.
func (h *harness) startParser(cfg Config) *Stage {
	h.t.Helper()
	logs := &logBuffer{}
	h.t.Cleanup(func() {
		if h.t.Failed() {
			logs.mu.Lock()
			h.t.Log("parser log:\n" + logs.b.String())
			logs.mu.Unlock()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(cfg, h.env.Deps(h.t, Def(), stage.Config{}, nil, logs))
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
	return s
}

// putJob records a job as the submitter and the relay would: its spec, change token, the files
// SharePoint announced.
func (h *harness) putJob(jobID string, spec *amrpipev1.JobSpec, token string, files ...string) {
	h.t.Helper()
	ts := []jobstore.Transition{jobstore.Accepted(&amrpipev1.SubmittedJob{JobId: jobID, Spec: spec, ChangeToken: token,
		Submitted: timestamppb.New(time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC))}), jobstore.Started(time.Date(2026, 11, 1, 8, 1, 0, 0, time.UTC))}
	for _, f := range files {
		ts = append(ts, jobstore.FileAnnounced(f))
	}
	if _, err := h.store.Fire(context.Background(), jobID, ts...); err != nil {
		h.t.Fatal(err)
	}
}

// putFile stores a decrypted file as the decryptor does and returns its ManifestReady.
func (h *harness) putFile(jobID, file string, data []byte) *amrpipev1.ManifestReady {
	h.t.Helper()
	name := topology.ManifestObject(jobID, file)
	info, err := new(manifestcopy.Packer).Store(context.Background(), h.objects, name, "", bytes.NewReader(data))
	if err != nil {
		h.t.Fatal(err)
	}
	return &amrpipev1.ManifestReady{JobId: jobID, File: file, Object: name, Size: manifestcopy.Size(info), Sha256: objectDigest(h.t, info),
		SpecId: "spec-1"}
}

// objectDigest is the object's SHA-256 in hex, as ManifestReady carries it.
func objectDigest(t testing.TB, info *jetstream.ObjectInfo) string {
	t.Helper()
	sum, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(info.Digest, "SHA-256="))
	if err != nil {
		t.Fatalf("object %s digest %q: %v", info.Name, info.Digest, err)
	}
	return hex.EncodeToString(sum)
}

func (h *harness) fixture(name string) []byte {
	h.t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		h.t.Fatal(err)
	}
	return data
}

// ready announces a stored file to the parser; msgID stands for a delivery (a redelivery after
// the duplicate window is the same message under another id).
func (h *harness) ready(m *amrpipev1.ManifestReady, msgID string) {
	h.t.Helper()
	if _, err := bus.Publish(context.Background(), h.env.JS, topology.ManifestSubject(m.GetJobId()), m, msgID); err != nil {
		h.t.Fatal(err)
	}
}

// end plays the relay at a job's end: it records the end event (a JobEnd as seen and confirmed
// by the progress API, as the relay does after a quiet poll) and relays it.
func (h *harness) end(jobID, event, msgID string) {
	h.t.Helper()
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	var ts []jobstore.Transition
	switch event {
	case topology.EventJobEnd:
		ts = []jobstore.Transition{jobstore.EndSeen(at, nil), jobstore.EndConfirmed()}
	case topology.EventJobCancelled:
		ts = []jobstore.Transition{jobstore.Cancelled(at, "SharePoint cancelled the job")}
	case topology.EventJobFatalError:
		ts = []jobstore.Transition{jobstore.Failed("SharePoint ended the job with JobFatalError", true)}
	}
	h.record(jobID, ts...)
	h.relayEvent(jobID, event, msgID)
}

// record fires transitions on a job as the relay would (a refusal, such as an event after the job
// was done, is what the relay would meet too).
func (h *harness) record(jobID string, ts ...jobstore.Transition) {
	h.t.Helper()
	if _, err := h.store.Fire(context.Background(), jobID, ts...); err != nil && !errors.Is(err, jobstore.ErrRefused) {
		h.t.Fatal(err)
	}
}

// relayEvent publishes an event of a job as the relay does, without recording it.
func (h *harness) relayEvent(jobID, event, msgID string) {
	h.t.Helper()
	ev := &amrpipev1.RelayedEvent{EventId: msgID, Event: &amrpipev1.MigrationEvent{JobId: jobID, RawName: event,
		Time: timestamppb.New(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC))}}
	if _, err := bus.Publish(context.Background(), h.env.JS, topology.EventSubject(jobID, event), ev, msgID); err != nil {
		h.t.Fatal(err)
	}
}

// msgs returns every message stored on subject (read by sequence: AMR_PLANS is a work queue).
func (h *harness) msgs(stream, subject string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.env.JS.Stream(ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatal(err)
		}
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// decode unmarshals the messages on subject into new Ms.
func decode[M proto.Message](h *harness, stream, subject string, newM func() M) []M {
	h.t.Helper()
	var out []M
	for _, raw := range h.msgs(stream, subject) {
		m := newM()
		if typ := raw.Header.Get(bus.HeaderType); typ != string(m.ProtoReflect().Descriptor().FullName()) {
			h.t.Fatalf("message of type %q on %s", typ, subject)
		}
		if err := proto.Unmarshal(raw.Data, m); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// batch is a RecordBatch with its message id.
type batch struct {
	id string
	*amrpipev1.RecordBatch
}

func (h *harness) batches(jobID string) []batch {
	h.t.Helper()
	var out []batch
	for _, m := range h.msgs(topology.StreamRecords, topology.RecordSubject(jobID)) {
		b := &amrpipev1.RecordBatch{}
		if err := proto.Unmarshal(m.Data, b); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, batch{m.Header.Get(jetstream.MsgIDHeader), b})
	}
	return out
}

func (h *harness) summaries(jobID string) []*amrpipev1.JobSummary {
	return decode(h, topology.StreamDone, topology.DoneSubject(jobID), func() *amrpipev1.JobSummary { return &amrpipev1.JobSummary{} })
}

func (h *harness) deadLetters() []*amrpipev1.DeadLetter {
	return decode(h, topology.StreamDLQ, topology.DLQSubject(topology.StageParser), func() *amrpipev1.DeadLetter { return &amrpipev1.DeadLetter{} })
}

func (h *harness) probeResults() []*amrpipev1.ProbeResult {
	return decode(h, topology.StreamPlans, topology.SubjectPlanProbe, func() *amrpipev1.ProbeResult { return &amrpipev1.ProbeResult{} })
}

// settled waits until the parser's consumers have nothing pending or unacknowledged, and the
// job record satisfies done.
func (h *harness) settled(jobID string, done func(*amrpipev1.JobRecord) bool) *amrpipev1.JobRecord {
	h.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		idle := true
		for _, name := range []string{topology.ConsumerParser, topology.ConsumerParserEnd} {
			spec, err := topology.Consumer(name)
			if err != nil {
				h.t.Fatal(err)
			}
			c, err := h.env.JS.Consumer(ctx, spec.Stream, name)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				idle = false
				continue
			}
			if err != nil {
				h.t.Fatal(err)
			}
			info, err := c.Info(ctx)
			if err != nil {
				h.t.Fatal(err)
			}
			idle = idle && info.NumPending == 0 && info.NumAckPending == 0
		}
		rec, _, err := h.store.Job(ctx, jobID)
		if err != nil {
			h.t.Fatal(err)
		}
		if idle && done(rec) {
			return rec
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %s not settled after 30s: %v", jobID, rec)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func inState(states ...amrpipev1.JobState) func(*amrpipev1.JobRecord) bool {
	return func(r *amrpipev1.JobRecord) bool { return slices.Contains(states, r.GetState()) }
}

// records flattens the batches of one file in batch order.
func records(bs []batch, file string) []*amrpipev1.Record {
	var out []*amrpipev1.Record
	slices.SortFunc(bs, func(a, b batch) int { return int(a.GetBatch()) - int(b.GetBatch()) })
	for _, b := range bs {
		if b.GetSourceFile() == file {
			out = append(out, b.GetRecords()...)
		}
	}
	return out
}

func equalRecords(a, b []*amrpipev1.Record) bool {
	return slices.EqualFunc(a, b, func(x, y *amrpipev1.Record) bool { return proto.Equal(x, y) })
}
