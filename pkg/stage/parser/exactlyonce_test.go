package parser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/stage"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// shortWindow shrinks the records stream's duplicate window, so that a batch published again
// after it is stored again: what keeps a re-parse from duplicating records is then the parse
// progress alone. (A replica started later ensures the topology and restores the 2-hour window:
// call this after starting them.) It checks that the window is really over for an id.
//
// The server applies a new window through its purge timer, which it fires at once but which can
// run before the new window is in place (nats-server 2.15 sets the window after resetting the
// timer): the purge then keeps every id for the old window's length. So the window is set again,
// a nanosecond apart, until an id really leaves it.
func (h *harness) shortWindow(d time.Duration) {
	h.t.Helper()
	ctx := context.Background()
	for attempt := range 5 {
		st, err := h.env.JS.Stream(ctx, topology.StreamRecords)
		if err != nil {
			h.t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		cfg.Duplicates = d + time.Duration(attempt)
		if _, err := h.env.JS.UpdateStream(ctx, cfg); err != nil {
			h.t.Fatal(err)
		}
		probe := fmt.Sprintf("window-probe-%d", attempt)
		if h.publishProbe(ctx, probe) {
			h.t.Fatalf("probe %s was a duplicate on its first publish", probe)
		}
		time.Sleep(4 * d)
		if !h.publishProbe(ctx, probe) {
			return
		}
		h.t.Logf("the id was still in the %s duplicate window after %s: setting the window again", d, 4*d)
	}
	h.t.Fatalf("the records stream's duplicate window did not become %s", d)
}

// publishProbe publishes an empty batch under id and says whether the stream took it for a
// duplicate.
func (h *harness) publishProbe(ctx context.Context, id string) bool {
	h.t.Helper()
	ack, err := bus.Publish(ctx, h.env.JS, topology.RecordSubject("window-probe"), &amrpipev1.RecordBatch{}, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return ack.Duplicate
}

// checkFile checks that every record of the file is on the stream exactly once, in order, in
// batches whose ranges tile the file's sequences, under distinct ids, the last one marked last.
func (h *harness) checkFile(jobID, file string, data []byte) {
	h.t.Helper()
	want := parseAll(h.t, data, jobID, file)
	type ranged struct {
		batch
		from, to uint64
	}
	var rs []ranged
	ids := map[string]bool{}
	for _, b := range h.batches(jobID) {
		if b.GetSourceFile() != file {
			continue
		}
		lb, ok := parseBatchID(b.id, jobID+"/"+file+"/")
		if !ok {
			h.t.Fatalf("batch id %q", b.id)
		}
		if ids[b.id] {
			h.t.Errorf("batch %s twice on the stream", b.id)
		}
		ids[b.id] = true
		rs = append(rs, ranged{b, lb.from, lb.to})
	}
	slices.SortFunc(rs, func(a, b ranged) int { return int(a.from) - int(b.from) })
	var got []*amrpipev1.Record
	next := uint64(0)
	for i, r := range rs {
		if r.from != next {
			h.t.Fatalf("batch %s starts at %d, the one before ended at %d: records repeated or missing", r.id, r.from, next)
		}
		next = r.to
		if r.GetLast() != (i == len(rs)-1) {
			h.t.Errorf("batch %s of %d: last=%t", r.id, len(rs), r.GetLast())
		}
		got = append(got, r.GetRecords()...)
	}
	if next != uint64(len(want)) {
		h.t.Errorf("the batches end at %d, the file has %d records", next, len(want))
	}
	if !equalRecords(got, want) {
		h.t.Errorf("%d records on the stream, the file has %d (or they differ)", len(got), len(want))
	}
}

// TestReparseAfterTheWindowPublishesNothing parses a file to its end without folding it (a crash
// right after its last acknowledgement), waits until the duplicate window is over, and parses it
// again, with the same framing and with other ones: the second parse publishes nothing.
func TestReparseAfterTheWindowPublishesNothing(t *testing.T) {
	tests := []struct {
		name   string
		second Config
	}{
		{"same framing", Config{BatchSize: 16}},
		{"another batch size", Config{BatchSize: 5}},
		{"another byte bound", Config{BatchSize: 16, MaxBatchBytes: 24 << 10}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			first := h.startParser(Config{BatchSize: 16, ProgressInterval: 50 * time.Millisecond})
			second := h.startParser(tt.second)
			h.shortWindow(100 * time.Millisecond)
			jobID := fmt.Sprintf("55555555-eeee-4fff-8000-%012d", i)
			h.putJob(jobID, allSpec(), "", "Manifest.xml")
			data := generated(t, 31, 400<<10)
			ready := h.putFile(jobID, "Manifest.xml", data)
			rec, _, err := h.store.Job(context.Background(), jobID)
			if err != nil {
				t.Fatal(err)
			}
			out1, err := first.parse(context.Background(), rec, "Manifest.xml", ready.GetObject(), ready)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(400 * time.Millisecond) // the window is over for every batch
			out2, err := second.parse(context.Background(), rec, "Manifest.xml", ready.GetObject(), ready)
			if err != nil {
				t.Fatal(err)
			}
			if out2.sent != 0 || out2.verdicts[publish] != out1.verdicts[publish] || !maps.Equal(out2.counts, out1.counts) {
				t.Errorf("the second parse sent %d batches and counts %d records %v, the first sent %d and counts %d %v",
					out2.sent, out2.verdicts[publish], out2.counts, out1.sent, out1.verdicts[publish], out1.counts)
			}
			h.checkFile(jobID, "Manifest.xml", data)
		})
	}
}

// startKillable runs a parser replica that the test can kill as a crash would: its connection
// closed under it, nothing flushed or settled.
func (h *harness) startKillable(cfg Config) (kill func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	deps := h.env.Deps(h.t, Def(), stage.Config{}, nil, nil)
	s, err := New(cfg, deps)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx) // whatever the crash makes it return
	}()
	h.t.Cleanup(func() { <-done }) // a crashed process does not wind down: nothing waits for it meanwhile
	return func() {
		deps.Runtime.Conn.Close()
		cancel()
	}
}

// progressOf returns the file's progress entry (nil when there is none).
func (h *harness) progressOf(jobID, file string) *amrpipev1.ParseProgress {
	h.t.Helper()
	e, err := h.env.KV(h.t, topology.BucketParseProgress).Get(context.Background(), progressKey(jobID, file))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	p := &amrpipev1.ParseProgress{}
	if err := proto.Unmarshal(e.Value(), p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// TestCrashMidFileThenResume kills a replica while it publishes a file (its connection closed
// under it, batches in flight, acknowledgements not yet recorded), then has another replica,
// with the same or another framing, parse the redelivered file after the duplicate window:
// every record reaches the stream exactly once.
func TestCrashMidFileThenResume(t *testing.T) {
	tests := []struct {
		name   string
		second Config
	}{
		{"same framing", Config{BatchSize: 2, MaxPending: 8}},
		{"another batch size", Config{BatchSize: 37}},
	}
	data := generated(t, 41, 3<<20)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			jobID := fmt.Sprintf("66666666-ffff-4000-8111-%012d", i)
			h.putJob(jobID, allSpec(), "", "Manifest.xml")
			ready := h.putFile(jobID, "Manifest.xml", data)
			// Small batches, several in flight, progress written at most every 50 ms: at the kill
			// some batches are on the stream without being recorded.
			kill := h.startKillable(Config{BatchSize: 2, MaxPending: 8, ProgressInterval: 50 * time.Millisecond})
			h.ready(ready, "first delivery")
			deadline := time.Now().Add(time.Minute)
			for p := h.progressOf(jobID, "Manifest.xml"); p == nil || p.GetNextSequence() == 0; p = h.progressOf(jobID, "Manifest.xml") {
				if time.Now().After(deadline) {
					t.Fatal("no progress recorded after a minute")
				}
				time.Sleep(2 * time.Millisecond)
			}
			kill()
			p := h.progressOf(jobID, "Manifest.xml")
			onStream := 0
			for _, b := range h.batches(jobID) {
				onStream += len(b.GetRecords())
			}
			if p.GetComplete() || onStream >= len(parseAll(t, data, jobID, "Manifest.xml")) {
				t.Fatalf("the file was published to its end before the kill (progress %v): make it bigger", p)
			}
			t.Logf("killed at recorded sequence %d (batch %d), %d records on the stream", p.GetNextSequence(), p.GetNextBatch(), onStream)

			h.startParser(tt.second)
			h.shortWindow(100 * time.Millisecond)
			h.ready(ready, "redelivered after the window")
			rec := h.waitParsed(jobID, 1)
			h.checkFile(jobID, "Manifest.xml", data)
			if want := int64(len(parseAll(t, data, jobID, "Manifest.xml"))); rec.GetRecords() != want {
				t.Errorf("job record counts %d records, the file has %d", rec.GetRecords(), want)
			}
			if p := h.progressOf(jobID, "Manifest.xml"); p != nil {
				t.Errorf("progress entry left after the file was folded: %v", p)
			}
		})
	}
}

// TestResumeOverAGap: a parse framed with 7 records per batch stopped with batch 3 lost and
// batches 4 and 5 on the stream (an acknowledgement failed in the middle); progress recorded up to
// batch 2. A parse with 16 records per batch resumes: it frames the stretch up to the last landed
// batch the old way, publishes only batch 3 of it, then goes on with its own framing. Together the
// batches hold every record once.
func TestResumeOverAGap(t *testing.T) {
	data := generated(t, 51, 120<<10)
	want := parseAll(t, data, "job-1", "Manifest.xml")
	old := framing{jobID: "job-1", specID: "spec-1", file: "Manifest.xml", size: 7, maxBytes: 1 << 20, content: "0123456789abcdef"}
	first := &sink{}
	if _, err := parseAndPublish(context.Background(), bytes.NewReader(data), newPolicy(allSpec()), nil, old, nil, first, nil); err != nil {
		t.Fatal(err)
	}
	if len(first.batches) < 8 {
		t.Fatalf("%d batches: want more", len(first.batches))
	}
	var landed []landedBatch
	for i, id := range first.ids[3:6] {
		lb, ok := parseBatchID(id, "job-1/Manifest.xml/")
		if !ok {
			t.Fatal(id)
		}
		lb.streamSeq = uint64(100 + i)
		landed = append(landed, lb)
	}
	landed = landed[1:] // batch 3 never landed
	third, _ := parseBatchID(first.ids[3], "job-1/Manifest.xml/")
	rp := &resumePoint{mark: progressMark{next: third.from, batch: 3}, resumed: true}
	cur := old
	cur.size = 16
	rp.absorb(landed, cur)
	if rp.old == nil || rp.old.size != 7 || len(rp.skip) != 2 {
		t.Fatalf("resume point %+v: want the old framing for the gap and two batches to skip", rp)
	}
	second := &sink{}
	if _, err := parseAndPublish(context.Background(), bytes.NewReader(data), newPolicy(allSpec()), nil, cur, rp, second, nil); err != nil {
		t.Fatal(err)
	}
	if second.ids[0] != first.ids[3] {
		t.Fatalf("the resumed parse first sent %s, want the lost batch %s", second.ids[0], first.ids[3])
	}
	var got []*amrpipev1.Record
	for _, b := range first.batches[:3] {
		got = append(got, b.GetRecords()...)
	}
	got = append(got, second.batches[0].GetRecords()...)
	for _, b := range first.batches[4:6] {
		got = append(got, b.GetRecords()...)
	}
	for _, b := range second.batches[1:] {
		got = append(got, b.GetRecords()...)
	}
	if !equalRecords(got, want) {
		t.Fatalf("%d records on the stream, want the file's %d once each", len(got), len(want))
	}
	if n := len(second.batches[1].GetRecords()); second.batches[1].GetBatch() != 6 || n > 16 {
		t.Errorf("after the gap: batch %d of %d records, want batch 6 with up to 16", second.batches[1].GetBatch(), n)
	}
}
