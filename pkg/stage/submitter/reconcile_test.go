package submitter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
)

// reconciling is a configuration that looks for lost jobs often (tests cannot wait minutes).
func reconciling(window time.Duration) Config {
	return Config{ReconcileInterval: 50 * time.Millisecond, ReconcileWindow: window}
}

// folders lists the job folders of the stage's manifest container, with their blob counts.
func (h *harness) folders(ctx context.Context) map[string]int {
	h.t.Helper()
	acct, err := storageEmulator.Account()
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]int{}
	pager := acct.Blob().ServiceClient().NewContainerClient(h.shared.Storage.Container).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			folder, _, _ := strings.Cut(*b.Name, "/")
			out[folder]++
		}
	}
	return out
}

// metric checks a counter or gauge of the stage.
func (h *harness) metric(name string, c prometheus.Collector, want float64) {
	h.t.Helper()
	if got := testutil.ToFloat64(c); got != want {
		h.t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// announcedOnce checks the job has exactly one SubmittedJob.
func (h *harness) announcedOnce(jobID string) {
	h.t.Helper()
	if n := len(h.e.NATS.Messages(h.t, topology.StreamJobs, topology.JobSubject(jobID))); n != 1 {
		h.t.Fatalf("%d SubmittedJob messages for job %s, want 1", n, jobID)
	}
}

// ended waits until SharePoint (the simulator) ended a job.
func (h *harness) ended(ctx context.Context, jobID string) {
	h.t.Helper()
	h.e.Log(h.t, ctx, testenv.Job{ID: jobID, Site: h.e.SimURL + testenv.Site})
}

// replica runs one more submitter on the same world, container and clock.
func (h *harness) replica(cfg Config) *Stage {
	h.t.Helper()
	deps := h.e.Deps(h.t, Def(), func(c *stage.Config) { *c = h.shared })
	deps.Now = h.now
	s, err := New(cfg, deps)
	if err != nil {
		h.t.Fatal(err)
	}
	testenv.RunStage(h.t, s.Run)
	return s
}

// TestLostCreateAnswerYieldsOneJob: SharePoint creates the job but its answer is lost (a 502 or
// 504 instead, the connection dropped, or no answer before the client's timeout). The create call
// is not made again: the job is found by its manifests (they decrypt with the spec's key) and
// becomes the spec's, with the attempt recorded. One create call, one job, no orphan.
func TestLostCreateAnswerYieldsOneJob(t *testing.T) {
	tests := []struct {
		name    string
		fault   server.Rule
		timeout time.Duration // the SharePoint client's; 0: the default
		reason  string        // in the recorded attempt
	}{
		{name: "502 instead of the answer", fault: server.Rule{Status: http.StatusBadGateway}, reason: "HTTP 502"},
		{name: "504 instead of the answer", fault: server.Rule{Status: http.StatusGatewayTimeout}, reason: "HTTP 504"},
		{name: "connection dropped", fault: server.Rule{Drop: true}, reason: "no answer"},
		{name: "no answer within the timeout", fault: server.Rule{Status: http.StatusGatewayTimeout, Delay: 3 * time.Second},
			timeout: 300 * time.Millisecond, reason: "no answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tt.fault.Method, tt.fault.Processed, tt.fault.Times = "CreateSPAsyncReadJob", true, 1
			h := startWith(t, reconciling(time.Hour), func(c *stage.Config) {
				if tt.timeout > 0 {
					c.SharePoint.Timeout = tt.timeout
				}
			}, tt.fault)
			spec := h.spec("spec-lost")
			h.submit(spec, "")
			h.noDeadLetters()

			sub := h.submission(spec.GetSpecId())
			jobID := sub.GetJob().GetJobId()
			if n := h.creates(0); n != 1 {
				t.Fatalf("%d create calls, want 1 (a call with an unknown outcome is never made again blindly)", n)
			}
			if folders := h.folders(ctx); len(folders) != 1 || folders[jobID] == 0 {
				t.Fatalf("job folders %v; want exactly the spec's job %s", folders, jobID)
			}
			a := sub.GetAttempts()
			if len(a) != 1 || a[0].GetOutcome() != amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_FOUND || a[0].GetJobId() != jobID ||
				!strings.Contains(a[0].GetReason(), tt.reason) || a[0].GetStarted() == nil || len(sub.GetOrphans()) != 0 {
				t.Fatalf("submission %v; want one attempt found as job %s, saying %q, no orphan", sub, jobID, tt.reason)
			}
			if rec, _, err := h.e.Store.Job(ctx, jobID); err != nil || rec.GetState() != amrpipev1.JobState_JOB_STATE_SUBMITTED || !rec.GetEncrypted() {
				t.Fatalf("job record %v, %v", rec, err)
			}
			h.announcedOnce(jobID)
			h.metric("ambiguous creates", h.svc.m.ambiguous, 1)
			h.metric("reconciled{found}", h.svc.m.reconciled.WithLabelValues("found"), 1)
		})
	}
}

// TestConcurrentDeliveriesOfOneSpecCreateOneJob: the same spec delivered four times at once (a plan
// redelivered past the duplicate window, a redelivery racing the first) to two replicas, while the
// create call is slow: the spec's claim lets one delivery call SharePoint; the others wait for its
// outcome and announce the same job.
func TestConcurrentDeliveriesOfOneSpecCreateOneJob(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := reconciling(time.Hour)
	h := start(t, cfg, server.Rule{Method: "CreateSPAsyncReadJob", Processed: true, Delay: time.Second, Times: 1})
	h.replica(cfg)
	spec := h.spec("spec-twice")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, err := bus.Publish(ctx, h.e.NATS.JS, topology.SpecSubject(spec.GetPlanId()), spec, fmt.Sprintf("%s#%d", spec.GetSpecId(), i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	h.settle()
	h.noDeadLetters()
	jobID := h.submission(spec.GetSpecId()).GetJob().GetJobId()
	if n := h.creates(0); n != 1 {
		t.Fatalf("%d create calls for one spec, want 1", n)
	}
	h.ended(ctx, jobID)
	if folders := h.folders(ctx); len(folders) != 1 || folders[jobID] == 0 {
		t.Fatalf("job folders %v; want only the spec's job %s", folders, jobID)
	}
	h.announcedOnce(jobID)
}

// TestLateJobAfterRecreateIsAnOrphanAndCleaned: the first create call's answer is lost and its
// job stays queued at SharePoint past the reconcile window, so the spec is created once more and
// settled with the second job. When the first job finally runs, its manifests decrypt with the
// spec's key while the spec has another job: it is recorded as an orphan (on the spec and for the
// janitor) and its blobs are deleted; the spec's job is untouched.
func TestLateJobAfterRecreateIsAnOrphanAndCleaned(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := reconciling(300 * time.Millisecond)
	cfg.JanitorInterval = 50 * time.Millisecond // late jobs of a settled spec are the janitor's to find
	h := start(t, cfg,
		server.Rule{Method: "CreateSPAsyncReadJob", Processed: true, Status: http.StatusBadGateway, Times: 1},
		server.Rule{Job: "postponed", Delay: 5 * time.Second, Times: 1})
	spec := h.spec("spec-late")
	h.submit(spec, "")
	h.noDeadLetters()
	sub := h.submission(spec.GetSpecId())
	jobID := sub.GetJob().GetJobId()
	a := sub.GetAttempts()
	if len(a) != 2 || a[0].GetOutcome() != amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_AMBIGUOUS ||
		a[1].GetOutcome() != amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_ACCEPTED || a[1].GetJobId() != jobID {
		t.Fatalf("attempts %v; want the lost one, then the accepted one", a)
	}
	if n := h.creates(0); n != 2 {
		t.Fatalf("%d create calls, want 2", n)
	}
	h.ended(ctx, jobID)
	var orphan string
	testenv.Eventually(t, 30*time.Second, "the late job recorded as an orphan", func() bool {
		orphans := h.submission(spec.GetSpecId()).GetOrphans()
		if len(orphans) == 1 {
			orphan = orphans[0].GetJobId()
		}
		return orphan != ""
	})
	if orphan == jobID {
		t.Fatalf("the spec's own job %s was taken for an orphan", jobID)
	}
	testenv.Eventually(t, 10*time.Second, "the orphan's mark for the janitor", func() bool {
		o, err := h.e.Store.Orphan(ctx, orphan)
		return err == nil && o.GetSpecId() == spec.GetSpecId()
	})
	h.ended(ctx, orphan) // it writes no more
	testenv.Eventually(t, 30*time.Second, "the orphan's manifests deleted", func() bool { return h.folders(ctx)[orphan] == 0 })
	if n := h.folders(ctx)[jobID]; n == 0 {
		t.Fatal("the spec's job lost its manifests")
	}
	if _, _, err := h.e.Store.Job(ctx, orphan); !errors.Is(err, jobstore.ErrNotFound) {
		t.Fatalf("the orphan has a job record (%v): something follows it", err)
	}
	h.metric("orphans", h.svc.m.orphans, 1)
	h.metric("reconciled{recreated}", h.svc.m.reconciled.WithLabelValues("recreated"), 1)
}

// TestCreateOutcomeUnknownTwice: a 502 without a job behind it. Once: after the window the spec is
// created again, and plan status tells the story. Twice: the spec ends failed with the reason,
// dead-lettered, and plan status shows the plan incomplete with it.
func TestCreateOutcomeUnknownTwice(t *testing.T) {
	tests := []struct {
		name     string
		times    int
		wantJob  bool
		wantText string // in the spec's plan status
	}{
		{name: "once: created again", times: 1, wantJob: true, wantText: "attempt 1: outcome unknown (SharePoint answered HTTP 502)"},
		{name: "twice: given up", times: 2, wantText: "2 create calls had an unknown outcome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			h := start(t, reconciling(200*time.Millisecond), server.Rule{Method: "CreateSPAsyncReadJob", Status: http.StatusBadGateway, Times: tt.times})
			spec := h.spec("spec-unknown")
			if _, err := h.e.Store.SavePlanning(ctx, jobstore.PlanIndex("plan1"), "plan1", []*amrpipev1.JobSpec{spec}); err != nil {
				t.Fatal(err)
			}
			h.submit(spec, "")
			if n := h.creates(0); n != tt.times+btoi(tt.wantJob) {
				t.Fatalf("%d create calls, want %d", n, tt.times+btoi(tt.wantJob))
			}
			st, err := h.e.Store.PlanStatus(ctx, "plan1")
			if err != nil {
				t.Fatal(err)
			}
			ss := st.GetSpecs()[0]
			text := ss.GetError() + " " + ss.GetNote()
			if !strings.Contains(text, tt.wantText) || (ss.GetJobId() != "") != tt.wantJob || st.GetFailed() == tt.wantJob {
				t.Fatalf("plan status %v; want job %t and %q", st, tt.wantJob, tt.wantText)
			}
			dl := h.e.NATS.DeadLetters(t, topology.StageSubmitter)
			if tt.wantJob {
				h.noDeadLetters()
				return
			}
			if len(dl) != 1 || !strings.Contains(dl[0].GetReason(), "unknown outcome") {
				t.Fatalf("dead letters %v; want the spec with the reason", dl)
			}
			h.metric("reconciled{failed}", h.svc.m.reconciled.WithLabelValues("failed"), 1)
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestJanitorKeepsLiveJobsAndDeletesFinishedOnesAfterRetention: with three jobs in the container
// (one done, one failed, one live) and folders that belong to no job, a sweep within the
// retention deletes nothing; a sweep after it deletes the blobs of the done and the failed job
// only.
func TestJanitorKeepsLiveJobsAndDeletesFinishedOnesAfterRetention(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := start(t, Config{BlobRetention: 2 * time.Hour}) // the janitor runs only when the test says
	ids := map[string]string{}
	for _, name := range []string{"done", "failed", "live"} {
		spec := h.spec("spec-" + name)
		h.submit(spec, "")
		ids[name] = h.submission(spec.GetSpecId()).GetJob().GetJobId()
		h.ended(ctx, ids[name])
	}
	h.noDeadLetters()
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	if _, err := h.e.Store.Fire(ctx, ids["done"], jobstore.EndSeen(at, nil), jobstore.EndConfirmed(), jobstore.Completed()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Store.Fire(ctx, ids["failed"], jobstore.Failed("SharePoint failed it", true)); err != nil {
		t.Fatal(err)
	}
	// A folder of another kind and a GUID folder nobody accounts for (plaintext: no key claims it).
	acct, err := storageEmulator.Account()
	if err != nil {
		t.Fatal(err)
	}
	stray := "0d9c8b7a-6f5e-4d3c-8b2a-190807060504"
	for _, name := range []string{"notes/readme.txt", stray + "/Manifest.xml"} {
		if _, err := acct.Blob().UploadBuffer(ctx, h.shared.Storage.Container, name, []byte("<x/>"), nil); err != nil {
			t.Fatal(err)
		}
	}
	before := h.folders(ctx)
	for _, id := range ids {
		if before[id] == 0 {
			t.Fatalf("job %s wrote no manifests: %v", id, before)
		}
	}
	if err := h.svc.sweep(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := h.folders(ctx); !equalCounts(got, before) {
		t.Fatalf("within the retention the sweep changed %v into %v", before, got)
	}
	h.ahead.Store(int64(3 * time.Hour))
	if err := h.svc.sweep(ctx, true); err != nil {
		t.Fatal(err)
	}
	after := h.folders(ctx)
	for name, want := range map[string]int{"done": 0, "failed": 0, "live": before[ids["live"]]} {
		if after[ids[name]] != want {
			t.Errorf("%s job: %d blobs after the retention, want %d", name, after[ids[name]], want)
		}
	}
	if after["notes"] != 1 || after[stray] != 1 {
		t.Errorf("folders of no job were touched: %v", after)
	}
	h.metric("deleted{retention}", h.svc.m.deleted.WithLabelValues("retention"), float64(before[ids["done"]]+before[ids["failed"]]))
	h.metric("unclaimed folders", h.svc.m.unclaimed, 2)
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDecryptsAsXML: the key test of attribution tells the right key from others.
func TestDecryptsAsXML(t *testing.T) {
	key, other := bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 32)
	iv := bytes.Repeat([]byte{1}, 16)
	plain := []byte(`<?xml version="1.0" encoding="utf-8"?><SPObjects xmlns="urn:deployment-manifest-schema">` + strings.Repeat("<SPObject/>", 400))
	ct, err := aescbc.Encrypt(key, iv, plain)
	if err != nil {
		t.Fatal(err)
	}
	if !decryptsAsXML(key, iv, ct[:sampleBytes]) || !decryptsAsXML(key, iv, ct) {
		t.Fatal("the spec's key does not claim its manifest")
	}
	if decryptsAsXML(other, iv, ct[:sampleBytes]) {
		t.Fatal("another key claims the manifest")
	}
	if decryptsAsXML(key, iv, ct[:8]) {
		t.Fatal("eight bytes are taken for a manifest")
	}
}
