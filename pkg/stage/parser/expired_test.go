package parser

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestGoneObjectIsAskedForAgain: a file whose decrypted copy is gone (its TTL expired while the
// parser was down), or whose stored copy does not match its digest (its chunk replaced, as a
// cluster was once seen to serve after a leader change), does not fail: the parser asks the
// decryptor to decrypt it again (a bad copy is deleted first, so the decryptor cannot take it for a
// stored one), once however often it looks, and waits, longer than -stall-timeout (the watchdog
// sees the file queued). When the copy is back (the test plays the decryptor), the file is parsed
// and the job completes with every record; the parser then deletes the copy and the file's
// progress entry.
func TestGoneObjectIsAskedForAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		// store puts what the object store holds of Manifest1.xml before it is announced.
		store func(h *harness, jobID string, data []byte)
	}{
		{name: "gone", store: func(*harness, string, []byte) {}},
		{name: "copy not matching its digest", store: func(h *harness, jobID string, data []byte) {
			h.putFile(jobID, "Manifest1.xml", data)
			object := topology.ManifestObject(jobID, "Manifest1.xml")
			raw, err := h.objects.GetBytes(context.Background(), object)
			if err != nil {
				h.t.Fatal(err)
			}
			raw[len(raw)/2] ^= 0xff // one byte changed in the stored chunk
			corruptChunk(h, object, raw)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { askedForAgain(t, tc.store) })
	}
}

// corruptChunk replaces the stored chunks of a one-chunk object with data.
func corruptChunk(h *harness, object string, data []byte) {
	h.t.Helper()
	ctx := context.Background()
	info, err := h.objects.GetInfo(ctx, object)
	if err != nil {
		h.t.Fatal(err)
	}
	st, err := h.env.JS.Stream(ctx, topology.ObjectStream(topology.ObjectManifests))
	if err != nil {
		h.t.Fatal(err)
	}
	chunks := "$O." + topology.ObjectManifests + ".C." + info.NUID
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(chunks)); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.env.JS.Publish(ctx, chunks, data); err != nil {
		h.t.Fatal(err)
	}
}

func askedForAgain(t *testing.T, store func(h *harness, jobID string, data []byte)) {
	h := newHarness(t)
	h.startParser(Config{BatchSize: 16, RedecryptPoll: 50 * time.Millisecond, StallTimeout: 200 * time.Millisecond,
		WatchInterval: 50 * time.Millisecond})
	j := contentJob(h, "77777777-0000-4111-8222-333344445555")
	h.putJob(j.id, j.spec, j.token, j.order...)
	h.ready(h.putFile(j.id, "Manifest.xml", j.files["Manifest.xml"]), j.id+"/Manifest.xml")
	h.ready(h.putFile(j.id, "UserGroup.xml", j.files["UserGroup.xml"]), j.id+"/UserGroup.xml")
	gone := j.files["Manifest1.xml"]
	ready := h.putFile("scratch", "Manifest1.xml", gone) // what the decryptor announces of the file
	if err := h.objects.Delete(context.Background(), ready.GetObject()); err != nil {
		t.Fatal(err)
	}
	store(h, j.id, gone)
	ready.JobId, ready.Object = j.id, topology.ManifestObject(j.id, "Manifest1.xml")
	h.ready(ready, j.id+"/Manifest1.xml")
	h.end(j.id, topology.EventJobEnd, "end-"+j.id)

	requests := func() []*amrpipev1.RelayedEvent {
		return testenv.Messages(t, context.Background(), h.env.JS, topology.StreamEvents, topology.EventSubject(j.id, topology.EventManifestExpired),
			func() *amrpipev1.RelayedEvent { return &amrpipev1.RelayedEvent{} })
	}
	testenv.Eventually(t, 30*time.Second, "a request to decrypt Manifest1.xml again", func() bool { return len(requests()) > 0 })
	time.Sleep(time.Second) // twenty polls and stall timeouts
	reqs := requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want one however often the parser looked", len(reqs))
	}
	ev := reqs[0].GetEvent()
	if name := ev.GetFinishManifestFileUpload().GetManifestFileName(); name != j.id+"/Manifest1.xml" || ev.GetRawName() != topology.EventManifestExpired ||
		reqs[0].GetSpecId() != "spec-1" || ev.GetJobId() != j.id {
		t.Fatalf("request %v: want the upload of %s/Manifest1.xml for spec-1", reqs[0], j.id)
	}
	rec, _, err := h.store.Job(context.Background(), j.id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetState() != amrpipev1.JobState_JOB_STATE_ENDED || len(rec.GetFilesFailed()) != 0 ||
		!slices.Equal(slices.Sorted(slices.Values(rec.GetFilesParsed())), []string{"Manifest.xml", "UserGroup.xml"}) {
		t.Fatalf("while the file is decrypted again the job must wait: %v", rec)
	}

	h.putFile(j.id, "Manifest1.xml", gone) // the decryptor's second decryption
	h.settled(j.id, inState(amrpipev1.JobState_JOB_STATE_DONE))
	h.checkRecords(j)
	if sums := h.summaries(j.id); len(sums) != 1 || sums[0].GetFailed() {
		t.Fatalf("summaries %v, want one that did not fail", sums)
	}
	h.leftNothing(j)
}

// leftNothing checks that the job's parsed files left no decrypted copy and no progress entry.
func (h *harness) leftNothing(j *job) {
	h.t.Helper()
	for _, f := range j.order {
		if _, err := h.objects.GetInfo(context.Background(), topology.ManifestObject(j.id, f)); err == nil {
			h.t.Errorf("%s: the decrypted copy is still in the object store", f)
		}
		if p := h.progressOf(j.id, f); p != nil {
			h.t.Errorf("%s: progress entry left: %v", f, p)
		}
	}
}
