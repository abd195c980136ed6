package submitter

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
)

// storageEmulator is the Azurite the tests of this package share.
var storageEmulator *testenv.Azurite

func TestMain(m *testing.M) { os.Exit(testenv.RunWithAzurite(m, &storageEmulator)) }

// harness is one submitter stage against an embedded JetStream, the simulator (Rate 0) and Azurite.
type harness struct {
	t      *testing.T
	e      *testenv.World
	svc    *Stage
	cfg    Config
	shared stage.Config
	rt     *svc.Runtime
	// ahead moves the stage's clock forward (nanoseconds).
	ahead atomic.Int64
}

// start runs the submitter with cfg (SharePoint and storage filled in; a container of its own).
func start(t *testing.T, cfg Config, faults ...server.Rule) *harness {
	t.Helper()
	return startWith(t, cfg, nil, faults...)
}

// startWith is start with a change to the shared configuration.
func startWith(t *testing.T, cfg Config, mod func(*stage.Config), faults ...server.Rule) *harness {
	t.Helper()
	h := &harness{t: t, e: testenv.StartWorld(t, storageEmulator, nil), cfg: cfg}
	if len(faults) > 0 {
		h.e.Faults(t, faults...)
	}
	deps := h.e.Deps(t, Def(), func(c *stage.Config) {
		c.Storage.Container = "submit-" + randomHex(t, 6)
		if mod != nil {
			mod(c)
		}
		h.shared = *c
	})
	h.rt = deps.Runtime
	deps.Now = h.now
	var err error
	if h.svc, err = New(cfg, deps); err != nil {
		t.Fatal(err)
	}
	testenv.RunStage(t, h.svc.Run)
	return h
}

// now is the stage's clock: the real one, moved forward by ahead.
func (h *harness) now() time.Time { return time.Now().Add(time.Duration(h.ahead.Load())) }

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// spec is a job spec of the simulator's test folder(s), as the planner publishes it.
func (h *harness) spec(id string, folders ...string) *amrpipev1.JobSpec {
	if len(folders) == 0 {
		folders = []string{testenv.Folder}
	}
	s := &amrpipev1.JobSpec{SpecId: id, PlanId: "plan1", SiteUrl: h.e.SimURL + testenv.Site, Multi: len(folders) > 1,
		Options: &amrpipev1.ReadOptions{IncludeVersions: true}, Emit: amrpipev1.Emit_EMIT_ALL, EmitPrincipals: true, ExpectedItems: 40, Tenant: "127.0.0.1"}
	for _, f := range folders {
		s.Urls = append(s.Urls, h.e.SimURL+f)
	}
	return s
}

// submit publishes a spec (msgID "" is the spec id) and waits until the submitter settled it.
func (h *harness) submit(spec *amrpipev1.JobSpec, msgID string) {
	h.t.Helper()
	if msgID == "" {
		msgID = spec.GetSpecId()
	}
	if _, err := bus.Publish(context.Background(), h.e.NATS.JS, topology.SpecSubject(spec.GetPlanId()), spec, msgID); err != nil {
		h.t.Fatal(err)
	}
	h.settle()
}

// settle waits until the stage has acknowledged or dead-lettered every message of its work queue.
func (h *harness) settle() {
	h.t.Helper()
	h.e.NATS.WaitSettled(h.t, topology.StreamSpecs, 30*time.Second)
}

// creates counts the create calls the simulator answered with status (0: any).
func (h *harness) creates(status int) int {
	n := 0
	for _, r := range h.e.Requests() {
		if strings.HasPrefix(r.Method, "CreateSPAsyncReadJob") && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

// submission is what amr_submissions holds for a spec.
func (h *harness) submission(specID string) *amrpipev1.Submission {
	h.t.Helper()
	e, err := h.e.NATS.KV(h.t, topology.BucketSubmissions).Get(context.Background(), specID)
	if err != nil {
		h.t.Fatalf("submission of %s: %v", specID, err)
	}
	sub := &amrpipev1.Submission{}
	if err := proto.Unmarshal(e.Value(), sub); err != nil {
		h.t.Fatal(err)
	}
	return sub
}

func (h *harness) noDeadLetters() {
	h.t.Helper()
	if dl := h.e.NATS.DeadLetters(h.t, topology.StageSubmitter); len(dl) != 0 {
		h.t.Fatalf("dead-lettered: %s", dl[0].GetReason())
	}
}

// firstManifest waits for the job's end and returns one package file SharePoint wrote, as stored.
func (h *harness) firstManifest(ctx context.Context, jobID string) (data []byte, iv []byte) {
	h.t.Helper()
	for _, l := range h.e.Log(h.t, ctx, testenv.Job{ID: jobID, Site: h.e.SimURL + testenv.Site}) {
		var ev map[string]string
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["Event"] != "FinishManifestFileUpload" {
			continue
		}
		acct, err := storageEmulator.Account()
		if err != nil {
			h.t.Fatal(err)
		}
		resp, err := acct.Blob().DownloadStream(ctx, h.shared.Storage.Container, ev["ManifestFileName"], nil)
		if err != nil {
			h.t.Fatal(err)
		}
		defer resp.Body.Close()
		if data, err = io.ReadAll(resp.Body); err != nil {
			h.t.Fatal(err)
		}
		if iv, err = aescbc.IVFromMetadata(resp.Metadata); err != nil && !h.cfg.Plaintext {
			h.t.Fatal(err)
		}
		return data, iv
	}
	h.t.Fatalf("job %s uploaded no package file", jobID)
	return nil, nil
}

func TestSpecBecomesOneSharePointJob(t *testing.T) {
	tests := []struct {
		name       string
		plaintext  bool
		folders    []string
		wantMethod string
	}{
		{name: "encrypted single-URL job", wantMethod: "CreateSPAsyncReadJob"},
		{name: "encrypted multi-URL job", folders: []string{testenv.Folder, "/sites/small/Shared Documents/Team-0002"},
			wantMethod: "CreateSPAsyncReadJobWithMultiUrl"},
		{name: "plaintext job", plaintext: true, wantMethod: "CreateSPAsyncReadJob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			h := start(t, Config{Plaintext: tt.plaintext})
			spec := h.spec("spec-one", tt.folders...)
			h.submit(spec, "")
			h.noDeadLetters()

			job := h.submission(spec.GetSpecId()).GetJob()
			if job.GetJobId() == "" || job.GetChangeToken() == "" || job.GetEncrypted() == tt.plaintext {
				t.Fatalf("stored submission %v", job)
			}
			if got := testutil.ToFloat64(h.svc.m.submitted.WithLabelValues(tt.wantMethod)); got != 1 || h.creates(http.StatusOK) != 1 {
				t.Fatalf("jobs submitted with %s: metric %v, simulator %d; want 1", tt.wantMethod, got, h.creates(http.StatusOK))
			}
			rec, _, err := h.e.Store.Job(ctx, job.GetJobId())
			if err != nil {
				t.Fatal(err)
			}
			if rec.GetState() != amrpipev1.JobState_JOB_STATE_SUBMITTED || !proto.Equal(rec.GetSpec(), spec) ||
				rec.GetContainer() != h.shared.Storage.Container || rec.GetChangeToken() != job.GetChangeToken() || rec.GetSubmitted() == nil {
				t.Fatalf("job record %v", rec)
			}
			// SharePoint knows the job by the id the record holds.
			if p, err := h.e.SP.GetMigrationJobProgress(ctx, spec.GetSiteUrl(), rec.GetJobId(), ""); err != nil || len(p.Logs) == 0 {
				t.Fatalf("progress of job %s: %v, %d events", rec.GetJobId(), err, len(p.Logs))
			}

			// Exactly one SubmittedJob, with the job id as message id and no secret in it.
			msgs := h.e.NATS.Messages(t, topology.StreamJobs, topology.JobSubject(job.GetJobId()))
			if len(msgs) != 1 || msgs[0].Header.Get(jetstream.MsgIDHeader) != job.GetJobId() {
				t.Fatalf("%d SubmittedJob messages", len(msgs))
			}
			raw := msgs[0].Data
			for k, v := range msgs[0].Header {
				raw = append(raw, []byte(k+strings.Join(v, ""))...)
			}
			if bytes.Contains(raw, []byte("sig=")) {
				t.Fatal("SubmittedJob carries a SAS signature")
			}

			data, iv := h.firstManifest(ctx, job.GetJobId())
			if tt.plaintext {
				if _, err := h.e.Store.Key(ctx, spec.GetSpecId()); err == nil {
					t.Fatal("a key was stored for a plaintext job")
				}
				if !bytes.HasPrefix(data, []byte("<?xml")) {
					t.Fatalf("plaintext package file starts %q", data[:min(16, len(data))])
				}
				return
			}
			// The key stored under the spec id is the one SharePoint encrypted with.
			key, err := h.e.Store.OpenKey(ctx, spec.GetSpecId(), h.e.KEK, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			plain, err := aescbc.Decrypt(key, iv, data)
			if err != nil || !bytes.HasPrefix(plain, []byte("<?xml")) {
				t.Fatalf("package file does not decrypt with the stored key: %v", err)
			}
			for _, secret := range [][]byte{key, []byte(base64.StdEncoding.EncodeToString(key)), []byte(base64.RawURLEncoding.EncodeToString(key)), []byte(hex.EncodeToString(key))} {
				if bytes.Contains(raw, secret) {
					t.Fatal("SubmittedJob carries the job key")
				}
			}
		})
	}
}

func TestRedeliveredSpecCreatesNoSecondJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := start(t, Config{})
	spec := h.spec("spec-again")
	h.submit(spec, "")
	jobID := h.submission(spec.GetSpecId()).GetJob().GetJobId()

	// The record lost (say, an operator deleted it), then the spec delivered again past the
	// duplicate window: no second job, the record is back, the announcement deduplicated.
	if err := h.e.NATS.KV(t, topology.BucketJobs).Delete(ctx, jobID); err != nil {
		t.Fatal(err)
	}
	h.submit(spec, spec.GetSpecId()+"#2")
	h.noDeadLetters()
	if n := h.creates(0); n != 1 {
		t.Fatalf("%d create calls, want 1", n)
	}
	if got := h.submission(spec.GetSpecId()).GetJob().GetJobId(); got != jobID {
		t.Fatalf("submission now names job %s, was %s", got, jobID)
	}
	if rec, _, err := h.e.Store.Job(ctx, jobID); err != nil || rec.GetState() != amrpipev1.JobState_JOB_STATE_SUBMITTED {
		t.Fatalf("job record after redelivery: %v, %v", rec, err)
	}
	if n := len(h.e.NATS.Messages(t, topology.StreamJobs, topology.JobSubject(jobID))); n != 1 {
		t.Fatalf("%d SubmittedJob messages, want 1", n)
	}
}

func TestThrottlingStormEndsInOneJob(t *testing.T) {
	t.Parallel()
	// Four 429s with Retry-After 1 s, and handlers that wait at most 300 ms: the spec goes back
	// to JetStream each time (not counted as a failure) until SharePoint takes it.
	h := startWith(t, Config{}, func(c *stage.Config) { c.MaxThrottleWait = 300 * time.Millisecond },
		server.Rule{Method: "CreateSPAsyncReadJob", Status: http.StatusTooManyRequests, RetryAfter: "1", Times: 4})
	spec := h.spec("spec-storm")
	h.submit(spec, "")
	h.noDeadLetters()
	if ok, throttled := h.creates(http.StatusOK), h.creates(http.StatusTooManyRequests); ok != 1 || throttled != 4 {
		t.Fatalf("create calls: %d accepted, %d throttled; want 1 and 4", ok, throttled)
	}
	if h.submission(spec.GetSpecId()).GetJob().GetJobId() == "" {
		t.Fatal("no job recorded")
	}
	if n := testenv.Counter(t, h.rt, "amr_sharepoint_responses_total", map[string]string{"host": "127.0.0.1", "status": "429"}); n != 4 {
		t.Fatalf("throttled responses metric = %v, want 4", n)
	}
	if n := testenv.Counter(t, h.rt, "amr_sharepoint_throttle_waits_total", map[string]string{"host": "127.0.0.1", "outcome": "deferred"}); n < 1 {
		t.Fatalf("no deferred wait recorded (%v)", n)
	}
}

func TestRejectedChangeTokenBecomesAReplan(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	lists, err := h.e.SP.Lists(context.Background(), h.e.SimURL+testenv.Site)
	if err != nil {
		t.Fatal(err)
	}
	var docs spo.List
	for _, l := range lists {
		if l.Title == "Documents" {
			docs = l
		}
	}
	// An incremental job on the library, scoped to one folder, with a token SharePoint refuses.
	spec := h.spec("spec-token")
	spec.Scope, spec.Urls = spec.Urls, []string{h.e.SimURL + docs.RootFolderURL}
	spec.StartChangeToken = "1;3;" + docs.ID + ";0;1"
	spec.ListIds, spec.TokenListId = []string{docs.ID}, docs.ID
	h.submit(spec, "")
	h.noDeadLetters()
	if n := h.creates(http.StatusOK); n != 0 {
		t.Fatalf("%d jobs created", n)
	}
	msgs := h.e.NATS.Messages(t, topology.StreamPlans, topology.SubjectPlanSubmit)
	if len(msgs) != 1 || msgs[0].Header.Get(jetstream.MsgIDHeader) != "replan/spec-token" {
		t.Fatalf("%d re-plans on %s", len(msgs), topology.SubjectPlanSubmit)
	}
	got := &amrpipev1.PlanRequest{}
	if err := proto.Unmarshal(msgs[0].Data, got); err != nil {
		t.Fatal(err)
	}
	want := &amrpipev1.PlanRequest{PlanId: "plan1-replan-spec-token", SiteUrl: spec.GetSiteUrl(), Targets: spec.GetScope(),
		Options: &amrpipev1.ReadOptions{IncludeVersions: true}, Incremental: true, TokenRejectedLists: []string{docs.ID},
		Submitted: got.GetSubmitted(), Tenant: "127.0.0.1"}
	if !proto.Equal(got, want) {
		t.Fatalf("re-plan\n got %v\nwant %v", got, want)
	}
	if !proto.Equal(h.submission("spec-token").GetReplan(), got) {
		t.Fatal("the re-plan is not recorded as the spec's outcome")
	}
	if n := testutil.ToFloat64(h.svc.m.replans); n != 1 {
		t.Fatalf("re-plans metric = %v", n)
	}
}

func TestUnsubmittableSpecsAreDeadLettered(t *testing.T) {
	t.Parallel()
	h := start(t, Config{})
	tests := []struct {
		name       string
		mod        func(*amrpipev1.JobSpec)
		wantReason string
	}{
		{name: "no URLs", mod: func(s *amrpipev1.JobSpec) { s.Urls = nil }, wantReason: "no URLs"},
		{name: "two URLs in a single-URL spec", mod: func(s *amrpipev1.JobSpec) { s.Urls = append(s.Urls, s.Urls[0]+"x") }, wantReason: "single-URL spec"},
		{name: "URL outside the site", mod: func(s *amrpipev1.JobSpec) { s.Urls = []string{h.e.SimURL + "/sites/other/Docs"} }, wantReason: "not under the site"},
		{name: "spec id unfit for a key", mod: func(s *amrpipev1.JobSpec) { s.SpecId = "a.b" }, wantReason: "spec id"},
		{name: "relative site URL", mod: func(s *amrpipev1.JobSpec) { s.SiteUrl = testenv.Site }, wantReason: "site_url"},
	}
	for i, tt := range tests {
		spec := h.spec(fmt.Sprintf("bad-%d", i))
		tt.mod(spec)
		if _, err := bus.Publish(context.Background(), h.e.NATS.JS, topology.SpecSubject("plan1"), spec, fmt.Sprintf("bad-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	h.settle()
	reasons := map[string]string{}
	for _, dl := range h.e.NATS.DeadLetters(t, topology.StageSubmitter) {
		reasons[dl.GetMsgId()] = dl.GetReason()
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, ok := reasons[fmt.Sprintf("bad-%d", i)]
			if !ok || !strings.Contains(reason, tt.wantReason) {
				t.Fatalf("dead letter reason %q (dead-lettered: %t), want it to say %q", reason, ok, tt.wantReason)
			}
		})
	}
	if n := h.creates(0); n != 0 {
		t.Fatalf("%d create calls for specs that cannot be jobs", n)
	}
}

func TestInvalidSASIsDeadLetteredWithoutSecrets(t *testing.T) {
	t.Parallel()
	// A SAS lifetime so short that every SAS has expired when it is checked: SharePoint would
	// fail such a job, so the submitter must not create it.
	h := startWith(t, Config{}, func(c *stage.Config) { c.Storage.SASTTL = time.Nanosecond })
	h.submit(h.spec("spec-sas"), "")
	dl := h.e.NATS.DeadLetters(t, topology.StageSubmitter)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	reason := dl[0].GetReason()
	if !strings.Contains(reason, "manifest container SAS") || !strings.Contains(reason, "expired") {
		t.Fatalf("reason %q does not say the SAS expired", reason)
	}
	var all bytes.Buffer
	all.WriteString(reason)
	all.Write(dl[0].GetPayload())
	for k, v := range dl[0].GetHeaders() {
		all.WriteString(k + v)
	}
	for _, secret := range []string{"sig=", testenv.AzuriteKey, h.shared.SharePoint.Token} {
		if strings.Contains(all.String(), secret) {
			t.Fatalf("dead letter carries a secret (%.6s…)", secret)
		}
	}
	if n := h.creates(0); n != 0 {
		t.Fatalf("%d create calls with an invalid SAS", n)
	}
}

// TestSpecRefusedWithA500LeavesThePlanIncomplete: SharePoint answers a create call with a 500
// (never retried); the spec is dead-lettered and recorded as failed with the reason, so the plan
// says it is incomplete instead of just having one job fewer.
func TestSpecRefusedWithA500LeavesThePlanIncomplete(t *testing.T) {
	t.Parallel()
	h := start(t, Config{}, server.Rule{Method: "CreateSPAsyncReadJob", Status: http.StatusInternalServerError, Times: 1})
	ctx := context.Background()
	refused, accepted := h.spec("spec-refused"), h.spec("spec-accepted")
	store, err := jobstore.Open(ctx, h.e.NATS.JS, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The planner's planning of plan1, as it stores it before publishing.
	if _, err := store.SavePlanning(ctx, jobstore.PlanIndex("plan1"), "plan1", []*amrpipev1.JobSpec{refused, accepted}); err != nil {
		t.Fatal(err)
	}
	h.submit(refused, "")
	h.submit(accepted, "")
	sub := h.submission(refused.GetSpecId())
	if !strings.Contains(sub.GetFailed(), "HTTP 500") {
		t.Fatalf("submission %v; want the spec recorded as failed with the 500", sub)
	}
	if n := h.creates(http.StatusInternalServerError); n != 1 {
		t.Fatalf("%d create calls answered 500, want 1 (a 500 is never retried)", n)
	}
	st, err := store.PlanStatus(ctx, "plan1")
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetFailed() || st.GetSpecsFailed() != 1 || len(st.GetSpecs()) != 2 {
		t.Fatalf("plan status %v; want one of two specs failed and the plan incomplete", st)
	}
	for _, s := range st.GetSpecs() {
		if s.GetSpecId() == refused.GetSpecId() && !strings.Contains(s.GetError(), "HTTP 500") {
			t.Errorf("spec %s status %v, want its reason", s.GetSpecId(), s)
		}
		if s.GetSpecId() == accepted.GetSpecId() && s.GetJobId() == "" {
			t.Errorf("spec %s has no job", s.GetSpecId())
		}
	}
}
