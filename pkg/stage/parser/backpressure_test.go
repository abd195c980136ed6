package parser

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// outcomes reads the parser's settled-message counts by outcome from its runtime's registry.
func outcomes(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "amr_stage_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["stage"] == topology.StageParser {
				out[labels["outcome"]] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// TestFullRecordsStreamMakesTheParserWait: the records stream is 32 KiB and its downstream
// consumer has not read yet, so it fills after a few batches. The parser's files then wait:
// handed back as throttled, never counted as failures nor dead-lettered, the job unfinished.
// Once the downstream consumer reads (and acknowledges, which frees the space under interest
// retention) the parser resumes, and downstream receives every record of every file, once.
func TestFullRecordsStreamMakesTheParserWait(t *testing.T) {
	const limit = 32 * topology.KiB
	h := &harness{t: t, env: testenv.StartJetStreamWith(t, topology.Options{MaxBytes: map[string]int64{topology.StreamRecords: limit}})}
	h.open()
	s := h.startParser(Config{BatchSize: 16})
	j := contentJob(h, "5a4b3c2d-1111-4222-8333-944455556666")
	_, total := h.wantCounts(j)
	h.run(j)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	testenv.Eventually(t, time.Minute, "the parser throttled by the full records stream", func() bool {
		return outcomes(t, s.deps.Runtime.Registry)["throttled"] >= 2
	})
	recordStream, err := h.env.JS.Stream(ctx, topology.StreamRecords)
	if err != nil {
		t.Fatal(err)
	}
	info, err := recordStream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes > uint64(limit) || info.State.Bytes < uint64(limit)/2 {
		t.Fatalf("records stream holds %d bytes of its %d while the parser waits", info.State.Bytes, limit)
	}
	if rec, _, err := h.store.Job(ctx, j.id); err != nil || rec.GetState() == amrpipev1.JobState_JOB_STATE_DONE {
		t.Fatalf("job done while its records could not all be published: %v %v", rec, err)
	}

	// Downstream reads: every batch acknowledged frees its space.
	down, err := h.env.JS.Consumer(ctx, topology.StreamRecords, topology.DefaultDownstream)
	if err != nil {
		t.Fatal(err)
	}
	var got []batch
	var parsed int64
	for parsed < total {
		msgs, err := down.Fetch(64, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range msgs.Messages() {
			b := &amrpipev1.RecordBatch{}
			if err := proto.Unmarshal(m.Data(), b); err != nil {
				t.Fatal(err)
			}
			got = append(got, batch{m.Headers().Get(jetstream.MsgIDHeader), b})
			parsed += int64(len(b.GetRecords()))
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("downstream has %d of %d records: the parser did not resume", parsed, total)
		}
	}
	rec := h.settled(j.id, inState(amrpipev1.JobState_JOB_STATE_DONE))
	if rec.GetRecords() != total {
		t.Errorf("job record counts %d records, want %d", rec.GetRecords(), total)
	}

	// Every record once, in order, each file ending in one last batch: nothing lost, nothing twice.
	ids := map[string]bool{}
	last := map[string]int{}
	for _, b := range got {
		if ids[b.id] {
			t.Errorf("batch %s delivered twice", b.id)
		}
		ids[b.id] = true
		if b.GetLast() {
			last[b.GetSourceFile()]++
		}
	}
	for _, f := range j.order {
		if want := parseAll(t, j.files[f], j.id, f); !equalRecords(records(got, f), want) || last[f] != 1 {
			t.Errorf("%s: downstream has %d records and %d last batches, the file yields %d", f, len(records(got, f)), last[f], len(want))
		}
	}
	n := outcomes(t, s.deps.Runtime.Registry)
	if n["retryable"] > 0 || n["dead_letter"] > 0 {
		t.Errorf("waiting for room counted as failures: %v", n)
	}
	if dls := h.deadLetters(); len(dls) > 0 {
		t.Errorf("dead letters: %v", dls)
	}
	t.Logf("outcomes %v; %d batches, %d records through a %d-byte stream", n, len(got), parsed, limit)
	if _, err := h.objects.GetInfo(ctx, topology.ManifestObject(j.id, "Manifest.xml")); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("a parsed file's object is still in %s: %v", topology.ObjectManifests, err)
	}
}
