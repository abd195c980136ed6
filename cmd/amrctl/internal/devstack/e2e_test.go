package devstack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

func start(t *testing.T, mod func(*devstack.Options)) *devstack.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: starts JetStream, Azurite, the simulator and the five stages")
	}
	opts := devstack.Options{Profile: tenant.SmallProfile(), Small: testenv.SmallProfileSmall, Large: testenv.SmallProfileLarge, MaxManifestBytes: 64 << 10,
		PollInterval: 100 * time.Millisecond}
	if os.Getenv("AMRPIPE_E2E_LOG") != "" {
		opts.Log, opts.LogLevel = os.Stderr, "info"
	}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := devstack.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close stack: %v", err)
		}
	})
	return s
}

// targets are the plan's URLs: the two libraries and the list of the small site, across two webs.
func targets(s *devstack.Stack) []string { return testenv.SmallTargets(s.SiteURL) }

func plan(s *devstack.Stack, id string, incremental bool) *amrpipev1.PlanRequest {
	return testenv.SmallPlan(s.SiteURL, id, incremental)
}

// batchedTargets are the two lists of the root web (small enough, with thresholds of 2,000 and
// 5,000, to share one multi-URL job) and a folder of the team web's library.
func batchedTargets(s *devstack.Stack) []string {
	return []string{
		s.SiteURL("/sites/small/Shared Documents"),
		s.SiteURL("/sites/small/Lists/Tasks"),
		s.SiteURL("/sites/small/team/Notes/Drafts"),
	}
}

// runPlan submits a plan and waits until the pipeline is idle.
func runPlan(t *testing.T, s *devstack.Stack, p *amrpipev1.PlanRequest, during func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := s.Submit(ctx, p); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during(ctx)
	}
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

// checkExactlyOnce compares everything downstream with the tenant's ground truth for the plan and
// checks every job finished well and every planner tier ran.
func checkExactlyOnce(t *testing.T, s *devstack.Stack, p *amrpipev1.PlanRequest) *testenv.Downstream {
	t.Helper()
	got, kinds := checkPlan(t, s, p)
	if p.GetPlanId() != "" && (kinds["probe"] < 2 || kinds["multi"] < 1 || kinds["single"] < 2 || kinds["security"] != 1) {
		t.Errorf("jobs by kind %v: want every planner tier (2+ probes, multi-URL, single, one security job)", kinds)
	}
	return got
}

// checkPlan compares everything downstream with the tenant's ground truth for the plan, checks
// every job finished well and returns the jobs by kind.
func checkPlan(t *testing.T, s *devstack.Stack, p *amrpipev1.PlanRequest) (*testenv.Downstream, map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want, err := s.Truth(ctx, p.GetTargets(), testenv.TenantOptions(p.GetOptions()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.Diff(got.Content, want); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, j := range jobs {
		if j.GetState() != amrpipev1.JobState_JOB_STATE_DONE {
			t.Errorf("job %s ended %s: %s", j.GetJobId(), j.GetState(), j.GetLastError())
		}
		sp := j.GetSpec()
		switch {
		case sp.GetProbe():
			kinds["probe"]++
		case sp.GetEmit() == amrpipev1.Emit_EMIT_SECURITY_ONLY:
			kinds["security"]++
		case sp.GetMulti():
			kinds["multi"]++
		default:
			kinds["single"]++
		}
	}
	t.Logf("%d jobs %v, %d records in %d batches, %d content objects", len(jobs), kinds, got.Records, got.Batches, len(want))
	if p.GetPlanId() != "" {
		if out, err := planStatus(t, s, p.GetPlanId()); err != nil || !strings.Contains(out, ": complete") {
			t.Errorf("plan status: %v\n%s", err, out)
		}
	}
	return got, kinds
}

func TestEndToEndEveryTierExactlyOnce(t *testing.T) {
	s := start(t, nil)
	p := plan(s, "e2e-tiers", false)
	runPlan(t, s, p, nil)
	checkExactlyOnce(t, s, p)
}

func TestEndToEndTwoReplicasOfEveryStage(t *testing.T) {
	s := start(t, func(o *devstack.Options) { o.Replicas = 2 })
	p := plan(s, "e2e-replicas", false)
	runPlan(t, s, p, nil)
	checkExactlyOnce(t, s, p)
}

func TestEndToEndEncryptedWithQueueBesideProgressPolling(t *testing.T) {
	s := start(t, func(o *devstack.Options) { o.Queue = true })
	p := plan(s, "e2e-queue", false)
	runPlan(t, s, p, nil)
	checkExactlyOnce(t, s, p)
}

func TestEndToEndStageRestartedMidJob(t *testing.T) {
	// A slow export (2,000 objects/s per job) so that the stages are stopped while jobs run.
	s := start(t, func(o *devstack.Options) { o.Rate = 2000 })
	p := plan(s, "e2e-restart", false)
	runPlan(t, s, p, func(ctx context.Context) {
		// Wait for the first manifests, then stop and restart the relay, the decryptor and the parser.
		for {
			got, err := s.Records(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.Records > 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, stage := range []string{topology.StageRelay, topology.StageDecryptor, topology.StageParser} {
			if err := s.StopStage(stage, 0); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(500 * time.Millisecond)
		for _, stage := range []string{topology.StageRelay, topology.StageDecryptor, topology.StageParser} {
			if err := s.StartStage(ctx, stage); err != nil {
				t.Fatal(err)
			}
		}
	})
	checkExactlyOnce(t, s, p)
}

func TestEndToEndIncrementalPassYieldsExactlyTheChanges(t *testing.T) {
	s := start(t, nil)
	first := plan(s, "e2e-pass-1", true)
	runPlan(t, s, first, nil)
	before := checkExactlyOnce(t, s, first)
	secondPass(t, s, before, plan(s, "e2e-pass-2", true))
}

// TestEndToEndIncrementalPassAfterBatchedFullPass: a full pass (not incremental) with thresholds
// that batch both lists of the site's root web into one multi-URL job leaves a change token for
// every list all the same (and one for the folder target), so the next incremental pass yields
// exactly the changes, the batched lists' and the folder's included.
func TestEndToEndIncrementalPassAfterBatchedFullPass(t *testing.T) {
	s := start(t, func(o *devstack.Options) { o.Small, o.Large = 2000, 5000 })
	first := plan(s, "e2e-batched-1", false)
	first.Targets = batchedTargets(s)
	runPlan(t, s, first, nil)
	before, kinds := checkPlan(t, s, first)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jobs, err := s.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	batched := false
	for _, j := range jobs {
		batched = batched || j.GetSpec().GetMulti() && len(j.GetSpec().GetListIds()) == 2 && len(j.GetSpec().GetListTokens()) == 2
	}
	if !batched {
		t.Fatalf("jobs %v: want the two lists of the root web in one multi-URL job", kinds)
	}
	second := plan(s, "e2e-batched-2", true)
	second.Targets = first.GetTargets()
	secondPass(t, s, before, second)
}

// secondPass changes the tenant, runs the incremental plan second, and checks that it yields
// exactly what changed since the tokens the first pass committed for the targets' lists.
func secondPass(t *testing.T, s *devstack.Stack, before *testenv.Downstream, second *amrpipev1.PlanRequest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := testenv.TenantOptions(second.GetOptions())
	changes := s.Tenant.Mutate(40)
	if len(changes) == 0 {
		t.Fatal("the simulator made no change")
	}
	// What changed since the tokens the first pass committed, target by target: a list's own, a
	// folder's own.
	want := map[testenv.Object]int{}
	for _, u := range second.GetTargets() {
		tg, err := s.Tenant.Resolve(u)
		if err != nil {
			t.Fatal(err)
		}
		scope := ""
		if tg.Kind != tenant.TargetList {
			scope = u
		}
		tok, _, err := s.Store.ScopedToken(ctx, tg.ListID, scope)
		if err != nil {
			t.Fatalf("no change token committed for %s by the first pass: %v", u, err)
		}
		o := opts
		o.StartChangeToken = tok.GetToken()
		part, err := s.Truth(ctx, []string{u}, o)
		if err != nil {
			t.Fatal(err)
		}
		for k, n := range part {
			want[k] += n
		}
	}
	runPlan(t, s, second, nil)
	after, err := s.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	delta := map[testenv.Object]int{}
	for o, n := range after.Content {
		if d := n - before.Content[o]; d > 0 {
			delta[o] = d
		}
	}
	if err := testenv.Diff(delta, want); err != nil {
		kinds := map[string]string{}
		for _, c := range changes {
			kinds[c.ObjectID] = fmt.Sprint(c.Kind)
		}
		for o := range want {
			if delta[o] == 0 {
				t.Logf("missing %v change %q", o, kinds[o.ID])
			}
		}
		t.Fatalf("second pass: %v", err)
	}
	if len(want) == 0 || len(want) >= len(before.Content) {
		t.Fatalf("second pass yields %d objects of %d: want only the changed ones", len(want), len(before.Content))
	}
	t.Logf("second pass: %d objects downstream for %d changes (first pass: %d)", len(delta), len(changes), len(before.Content))
}

func TestEndToEndRefusedManifestFailsTheJobInsteadOfHangingIt(t *testing.T) {
	// The first job's manifests arrive truncated: the decryptor must refuse them, and the job must
	// end failed (with a failed summary) while every other job completes.
	s := start(t, func(o *devstack.Options) {
		o.Faults = []server.Rule{{Job: "truncated-upload", Times: 1}}
	})
	p := plan(s, "e2e-refused", false)
	runPlan(t, s, p, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jobs, err := s.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, j := range jobs {
		switch j.GetState() {
		case amrpipev1.JobState_JOB_STATE_FAILED:
			failed++
			if !strings.Contains(j.GetLastError(), "truncated") {
				t.Errorf("failed job %s says %q, want the truncated manifest named", j.GetJobId(), j.GetLastError())
			}
		case amrpipev1.JobState_JOB_STATE_DONE:
		default:
			t.Errorf("job %s left %s", j.GetJobId(), j.GetState())
		}
	}
	if failed != 1 {
		t.Fatalf("%d failed jobs, want exactly the one whose upload was truncated", failed)
	}
	// The plan says it is incomplete, and `amrctl plan status` fails with the reason.
	out, err := planStatus(t, s, p.GetPlanId())
	if !errors.Is(err, cli.ErrIncomplete) || !strings.Contains(out, "ended incomplete") || !strings.Contains(out, "truncated") {
		t.Fatalf("plan status: %v\n%s", err, out)
	}
}

// TestEndToEndLostCreateAnswersExactlyOnce: SharePoint creates jobs whose create answers are lost
// (a 502 instead of one, a dropped connection on a multi-URL call), and the first of them stays
// queued past the reconcile window. No create call with an unknown outcome is made again
// blindly: a lost job found by its manifests becomes its spec's; the one still queued is created
// once more, and when it runs after all it is recorded as an orphan, never followed, and its
// manifests are deleted. Downstream gets every object exactly once.
func TestEndToEndLostCreateAnswersExactlyOnce(t *testing.T) {
	s := start(t, func(o *devstack.Options) {
		o.Faults = []server.Rule{
			{Method: "CreateSPAsyncReadJob", Processed: true, Status: http.StatusBadGateway, Times: 1},
			{Method: "CreateSPAsyncReadJobWithMultiUrl", Processed: true, Drop: true, Times: 1},
			{Job: "postponed", Delay: 12 * time.Second, Times: 1},
		}
		// One spec at a time, so the first create call (the security job's) is the one whose answer
		// is lost and whose job is postponed.
		o.StageArgs = map[string][]string{topology.StageSubmitter: {"-concurrency", "1", "-reconcile-interval", "100ms", "-reconcile-window", "5s",
			"-janitor-interval", "200ms"}}
	})
	p := plan(s, "e2e-lost", false)
	runPlan(t, s, p, nil)
	checkExactlyOnce(t, s, p)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := s.Store.PlanStatus(ctx, p.GetPlanId())
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[amrpipev1.AttemptOutcome]int{}
	var orphans []string
	testenv.Eventually(t, 30*time.Second, "the late job recorded as an orphan", func() bool {
		clear(outcomes)
		orphans = orphans[:0]
		for _, sp := range st.GetSpecs() {
			sub, err := s.Store.Submission(ctx, sp.GetSpecId())
			if err != nil || sub.GetJob() == nil {
				t.Fatalf("spec %s: submission %v (%v), want a job", sp.GetSpecId(), sub, err)
			}
			for _, a := range sub.GetAttempts() {
				outcomes[a.GetOutcome()]++
			}
			for _, o := range sub.GetOrphans() {
				orphans = append(orphans, o.GetJobId())
			}
		}
		return len(orphans) > 0
	})
	if outcomes[amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_FOUND] != 1 || outcomes[amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_AMBIGUOUS] != 1 ||
		len(orphans) != 1 {
		t.Fatalf("attempts %v, orphans %v: want one lost job found, one created again, one orphan", outcomes, orphans)
	}
	if len(jobs) != len(st.GetSpecs()) {
		t.Fatalf("%d job records for %d specs", len(jobs), len(st.GetSpecs()))
	}
	for _, j := range jobs {
		if j.GetJobId() == orphans[0] {
			t.Fatalf("the orphan %s has a job record", orphans[0])
		}
	}
	// The orphan's manifests are deleted, and stay so once it has run.
	acct, err := s.Azurite.Account()
	if err != nil {
		t.Fatal(err)
	}
	blobs := func() int {
		n := 0
		pager := acct.Blob().NewListBlobsFlatPager(s.Storage.Container, &azblob.ListBlobsFlatOptions{Prefix: &orphans[0]})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.Segment.BlobItems)
		}
		return n
	}
	testenv.Eventually(t, 30*time.Second, "the orphan's manifests gone for good", func() bool {
		if blobs() != 0 {
			return false
		}
		time.Sleep(time.Second)
		return blobs() == 0
	})
	out, err := planStatus(t, s, p.GetPlanId())
	if err != nil || !strings.Contains(out, "orphan job(s) ("+orphans[0]+")") || !strings.Contains(out, "was found by its manifests") {
		t.Fatalf("plan status: %v\n%s", err, out)
	}
}

// planStatus runs `amrctl plan status` against the stack and returns its output and error.
func planStatus(t *testing.T, s *devstack.Stack, planID string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := cli.Root()
	root.SetOut(&out)
	root.SetArgs([]string{"--nats-url", s.NATSURL(), "plan", "status", planID})
	err := root.Execute()
	return out.String(), err
}

// TestEndToEndExpiredManifestsAreDecryptedAgain: the parser is down while the first jobs export;
// their files are decrypted and announced, and the decrypted copies expire (deleted here, as the
// object store's TTL does after a day) before the parser reads them. The parser comes back, finds
// each copy gone, asks the decryptor for it again and waits; the decryptor decrypts the blobs from
// Azure anew; every job completes with every record, once, and the parser leaves no decrypted copy
// behind.
func TestEndToEndExpiredManifestsAreDecryptedAgain(t *testing.T) {
	s := start(t, nil)
	if err := s.StopStage(topology.StageParser, 0); err != nil {
		t.Fatal(err)
	}
	p := plan(s, "e2e-expired", false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := s.Submit(ctx, p); err != nil {
		t.Fatal(err)
	}
	obs, err := s.JS.ObjectStore(ctx, topology.ObjectManifests)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the jobs submitted so far have ended and every file they announced is decrypted
	// and waits for the parser (the rest of the plan waits for the probes, which need the parser).
	announced := 0
	for stable := 0; stable < 3; {
		jobs, err := s.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		files, ended := 0, len(jobs) > 0
		for _, j := range jobs {
			files += len(j.GetFilesAnnounced())
			ended = ended && j.GetEndConfirmed()
		}
		list, err := obs.List(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
			t.Fatal(err)
		}
		if ended && files > 0 && len(list) == files && files == announced {
			stable++
		} else {
			stable = 0
		}
		announced = files
		select {
		case <-ctx.Done():
			t.Fatalf("the first jobs did not end with their files decrypted: %d jobs, %d files announced, %d objects", len(jobs), files, len(list))
		case <-time.After(200 * time.Millisecond):
		}
	}
	list, err := obs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list {
		if err := obs.Delete(ctx, o.Name); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("deleted the %d decrypted files of the first jobs before the parser read them", len(list))

	if err := s.StartStage(ctx, topology.StageParser); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, s, p)
	requests, err := s.JS.Stream(ctx, topology.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := requests.Info(ctx, jetstream.WithSubjectFilter(topology.EventSubject("*", topology.EventManifestExpired)))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Msgs; n < uint64(len(list)) {
		t.Errorf("%d requests to decrypt a file again, want one per deleted file (%d)", n, len(list))
	}
	if left, err := obs.List(ctx); !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Errorf("%d decrypted files left in the object store (%v), want none: the parser deletes each once parsed", len(left), err)
	}
}
