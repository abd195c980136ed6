package parser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest/manifestgen"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// sink is a publisher that keeps what it was given, in order, and acknowledges at once.
type sink struct {
	mu      sync.Mutex
	ids     []string
	batches []*amrpipev1.RecordBatch
	failAt  int // fail the publish of this batch number (0: never)
}

func (s *sink) PublishMsg(_ context.Context, msg *nats.Msg, done func(*jetstream.PubAck, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// What reaches the stream: the payload, typed as a RecordBatch.
	b := &amrpipev1.RecordBatch{}
	if err := proto.Unmarshal(msg.Data, b); err != nil {
		return err
	}
	if typ := msg.Header.Get(bus.HeaderType); typ != "amrpipe.v1.RecordBatch" || msg.Subject != topology.RecordSubject(b.GetJobId()) {
		return fmt.Errorf("%s on subject %s", typ, msg.Subject)
	}
	// The hand-made encoding is the one proto.Marshal gives the message.
	if want, err := proto.Marshal(b); err != nil || !bytes.Equal(want, msg.Data) {
		return fmt.Errorf("batch %d encodes to other bytes than proto.Marshal gives it (%v)", b.GetBatch(), err)
	}
	if s.failAt > 0 && len(s.batches)+1 == s.failAt {
		return errors.New("no acknowledgement")
	}
	s.ids = append(s.ids, msg.Header.Get(jetstream.MsgIDHeader))
	s.batches = append(s.batches, b)
	if done != nil {
		done(&jetstream.PubAck{Stream: topology.StreamRecords, Sequence: uint64(len(s.batches))}, nil)
	}
	return nil
}

// records returns the records of the batches, in order, and checks the batch numbering and that
// the ranges of their ids tile the file's sequences from 0 to parsed.
func (s *sink) records(t *testing.T, fr framing, parsed int64) []*amrpipev1.Record {
	t.Helper()
	var out []*amrpipev1.Record
	from := uint64(0)
	for i, b := range s.batches {
		lb, ok := parseBatchID(s.ids[i], b.GetJobId()+"/"+b.GetSourceFile()+"/")
		if b.GetBatch() != uint32(i) || !ok || lb.fingerprint != fr.fingerprint() || lb.from != from {
			t.Errorf("batch %d is numbered %d with id %s (from %d, fingerprint %s)", i, b.GetBatch(), s.ids[i], from, fr.fingerprint())
		}
		for _, r := range b.GetRecords() {
			if r.GetSequence() < lb.from || r.GetSequence() >= lb.to {
				t.Errorf("batch %s holds record %d", s.ids[i], r.GetSequence())
			}
		}
		from = lb.to
		if b.GetLast() != (i == len(s.batches)-1) {
			t.Errorf("batch %d of %d: last=%t", i, len(s.batches), b.GetLast())
		}
		out = append(out, b.GetRecords()...)
	}
	if len(s.batches) > 0 && s.batches[len(s.batches)-1].GetLast() && from != uint64(parsed) {
		t.Errorf("the last batch ends at %d, the file has %d records", from, parsed)
	}
	return out
}

func generated(t testing.TB, seed uint64, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := manifestgen.Write(&buf, manifestgen.Config{Seed: seed, TargetBytes: size, Tricky: true}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func parseAll(t testing.TB, data []byte, jobID, file string) []*amrpipev1.Record {
	t.Helper()
	var out []*amrpipev1.Record
	err := manifest.Parse(context.Background(), bytes.NewReader(data), manifest.Options{JobID: jobID, SourceFile: file},
		func(r *amrpipev1.Record) error { out = append(out, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func allSpec() *amrpipev1.JobSpec {
	return &amrpipev1.JobSpec{SpecId: "spec-1", WebUrl: host + "/sites/finance", Urls: []string{host + "/sites/finance/Shared Documents"},
		Emit: amrpipev1.Emit_EMIT_ALL, EmitPrincipals: true}
}

// TestFraming checks the batches of one file: every record once and in order, at most size
// records and maxBytes per batch, only the last batch marked, and the same batches (ids and
// contents) when the file is parsed again.
func TestFraming(t *testing.T) {
	data := generated(t, 7, 300<<10)
	want := parseAll(t, data, "job-1", "Manifest.xml")
	big := 0
	for _, r := range want {
		big = max(big, proto.Size(r)+8)
	}
	tests := []struct {
		name           string
		size, maxBytes int
	}{
		{"by count", 16, 1 << 20},
		{"by bytes", 1000, 8 * big},
		{"one record per batch", 1, 1 << 20},
		{"all in one", len(want) + 1, 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := framing{jobID: "job-1", specID: "spec-1", file: "Manifest.xml", size: tt.size, maxBytes: tt.maxBytes, content: strings.Repeat("ab", 32)}
			var runs [2]*sink
			for i := range runs {
				runs[i] = &sink{}
				out, err := parseAndPublish(context.Background(), bytes.NewReader(data), newPolicy(allSpec()), nil, fr, nil, runs[i], nil)
				if err != nil {
					t.Fatal(err)
				}
				if out.verdicts[publish] != int64(len(want)) || int(out.batches) != len(runs[i].batches) {
					t.Fatalf("published %d records in %d batches, want %d records in %d batches",
						out.verdicts[publish], out.batches, len(want), len(runs[i].batches))
				}
			}
			got := runs[0].records(t, fr, int64(len(want)))
			if len(got) != len(want) {
				t.Fatalf("%d records in the batches, want %d", len(got), len(want))
			}
			for i := range want {
				if !proto.Equal(got[i], want[i]) {
					t.Fatalf("record %d differs from what pkg/sharepoint/manifest yields", i)
				}
			}
			for i, b := range runs[0].batches {
				n := 0
				for _, r := range b.GetRecords() {
					n += proto.Size(r)
				}
				if len(b.GetRecords()) > tt.size || n > tt.maxBytes {
					t.Errorf("batch %d: %d records of %d bytes, over %d / %d", i, len(b.GetRecords()), n, tt.size, tt.maxBytes)
				}
				if i >= len(runs[1].batches) || runs[1].ids[i] != runs[0].ids[i] || !proto.Equal(runs[1].batches[i], b) {
					t.Fatalf("batch %d differs when the file is parsed again", i)
				}
			}
		})
	}
}

func TestFramingEdges(t *testing.T) {
	fr := framing{jobID: "job-1", specID: "spec-1", file: "Manifest.xml", size: 4, maxBytes: 1 << 20}
	t.Run("no records: one empty last batch", func(t *testing.T) {
		s := &sink{}
		empty := `<SPObjects xmlns="urn:deployment-manifest-schema"></SPObjects>`
		if _, err := parseAndPublish(context.Background(), strings.NewReader(empty), newPolicy(allSpec()), nil, fr, nil, s, nil); err != nil {
			t.Fatal(err)
		}
		if len(s.batches) != 1 || !s.batches[0].GetLast() || len(s.batches[0].GetRecords()) != 0 {
			t.Fatalf("batches %v, want one empty last batch", s.batches)
		}
	})
	t.Run("parse error: closed batches stay, no last batch", func(t *testing.T) {
		data := generated(t, 3, 64<<10)
		broken := append(bytes.Clone(data[:len(data)*3/4]), "<SPObject <"...)
		s := &sink{}
		_, err := parseAndPublish(context.Background(), bytes.NewReader(broken), newPolicy(allSpec()), nil, fr, nil, s, nil)
		var se *manifest.SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("err = %v, want a syntax error", err)
		}
		if len(s.batches) == 0 {
			t.Fatal("no batch published before the error")
		}
		for _, b := range s.batches {
			if b.GetLast() {
				t.Fatalf("batch %d of a failed file says last", b.GetBatch())
			}
		}
	})
	t.Run("publish failure stops the file", func(t *testing.T) {
		s := &sink{failAt: 3}
		_, err := parseAndPublish(context.Background(), bytes.NewReader(generated(t, 3, 64<<10)), newPolicy(allSpec()), nil, fr, nil, s, nil)
		if err == nil || len(s.batches) != 2 {
			t.Fatalf("err = %v after %d batches, want a failure after 2", err, len(s.batches))
		}
	})
	t.Run("a record over the byte bound is permanent", func(t *testing.T) {
		s := &sink{}
		small := fr
		small.maxBytes = 200
		_, err := parseAndPublish(context.Background(), bytes.NewReader(generated(t, 3, 16<<10)), newPolicy(allSpec()), nil, small, nil, s, nil)
		var perm *bus.Permanent
		if !errors.As(err, &perm) || !strings.Contains(perm.Reason, "over the batch limit") {
			t.Fatalf("err = %v, want a permanent error naming the limit", err)
		}
	})
}
