package sink_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/downstream/sink"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func batch(job, file string, n uint32, ids ...string) *amrpipev1.RecordBatch {
	b := &amrpipev1.RecordBatch{JobId: job, SourceFile: file, Batch: n}
	for _, id := range ids {
		b.Records = append(b.Records, &amrpipev1.Record{JobId: job, SourceFile: file, ObjectId: id, ObjectType: "SPFile"})
	}
	return b
}

func TestSinkWritesEachRecordOnceFromTheStream(t *testing.T) {
	env := testenv.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "records.jsonl")
	s, err := sink.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	pubs := []struct {
		id string
		b  *amrpipev1.RecordBatch
	}{
		{"j1/Manifest.xml/0", batch("j1", "Manifest.xml", 0, "a", "b")},
		{"j1/Manifest.xml/1", batch("j1", "Manifest.xml", 1, "c")},
		{"j2/Manifest.xml/0", batch("j2", "Manifest.xml", 0, "d")},
	}
	for _, p := range pubs {
		if _, err := bus.Publish(ctx, env.JS, topology.RecordSubject(p.b.JobId), p.b, p.id); err != nil {
			t.Fatal(err)
		}
	}
	// A redelivered batch reaching the sink again writes nothing.
	if err := s.Write(pubs[0].id, pubs[0].b); err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sink.Consume(cctx, env.JS, s.Write) }()
	if err := s.WaitRecords(ctx, 4); err != nil {
		t.Fatalf("sink holds %d records: %v", s.Records(), err)
	}
	ccancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			ObjectID string `json:"object_id"`
			JobID    string `json:"job_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		ids = append(ids, r.JobID+"/"+r.ObjectID)
	}
	want := []string{"j1/a", "j1/b", "j1/c", "j2/d"}
	if len(ids) != len(want) {
		t.Fatalf("sink lines %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("sink lines %v, want %v", ids, want)
		}
	}
}
