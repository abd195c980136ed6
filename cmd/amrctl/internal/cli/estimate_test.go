package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/estimate"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/planner"
	"github.com/amrpipe/amrpipe/pkg/testenv"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestEstimate: the estimate of the small sample plan names as many jobs, of the same kinds, as
// the planner stage publishes for the same plan against the same simulator; -o json decodes;
// --plan measures a running plan from its job records; bad input is a usage error.
func TestEstimate(t *testing.T) {
	const token = "estimate-test-token"
	js := testenv.StartJetStream(t)
	siteURL := simulator(t, token)
	root := siteURL[:len(siteURL)-len(testenv.Site)]
	plan := testenv.SmallPlan(func(p string) string { return root + p }, "estimate-small", false)
	t.Setenv("AMR_SP_TOKEN", token)
	url := js.Server.ClientURL()

	args := []string{"-o", "json", "estimate", "--site", plan.GetSiteUrl(), "--security", "--versions", "--permissions",
		"--small", fmt.Sprint(testenv.SmallProfileSmall), "--large", fmt.Sprint(testenv.SmallProfileLarge)}
	for _, tg := range plan.GetTargets() {
		args = append(args, "--target", tg)
	}
	out, err := amrctl(t, url, args...)
	if err != nil {
		t.Fatalf("estimate: %v\n%s", err, out)
	}
	var est estimate.Estimate
	if err := json.Unmarshal([]byte(out), &est); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}

	// What the planner stage publishes for the same plan.
	deps := js.Deps(t, planner.Def(), stage.Config{SharePoint: spo.Config{UserAgent: "ISV|amrpipe|estimate-test/1.0", Token: token, Timeout: 30 * time.Second}}, nil, nil)
	st, err := planner.New(planner.Config{Planner: sizing.Config{Small: testenv.SmallProfileSmall, Large: testenv.SmallProfileLarge}}, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _ = st.Run(ctx) }()
	if _, err := bus.Publish(ctx, js.JS, topology.SubjectPlanSubmit, plan, "plan/"+plan.GetPlanId()); err != nil {
		t.Fatal(err)
	}
	var published []*amrpipev1.JobSpec
	for published == nil {
		p, err := deps.Jobs.Planning(ctx, jobstore.PlanIndex(plan.GetPlanId()))
		switch {
		case err == nil && p != nil && len(p.Specs) > 0:
			published = p.Specs
		case ctx.Err() != nil:
			t.Fatalf("the planner published nothing: %v", err)
		default:
			time.Sleep(50 * time.Millisecond)
		}
	}
	kinds := map[string]int{}
	for _, s := range published {
		kinds[estimate.KindOf(planner.SpecFromProto(s))]++
	}
	if est.JobCount != len(published) || fmt.Sprint(est.ByKind) != fmt.Sprint(kinds) {
		t.Errorf("estimate: %d jobs %v; the planner published %d jobs %v", est.JobCount, est.ByKind, len(published), kinds)
	}
	// The small profile: Documents (~1,750 items), Tasks (300), Notes (101).
	if est.Objects < 2000 || est.ETAFast.Seconds <= 0 || est.ETASlow.Seconds < est.ETAFast.Seconds || est.Concurrency != 1 {
		t.Errorf("estimate: %d objects, ETA %v to %v, concurrency %d", est.Objects, est.ETAFast, est.ETASlow, est.Concurrency)
	}

	// A running plan: one job half done, started a minute ago.
	started := time.Now().Add(-time.Minute)
	rec := &amrpipev1.JobRecord{JobId: "job-running", Spec: published[0], State: amrpipev1.JobState_JOB_STATE_RUNNING,
		ObjectsProcessed: 600, ExpectedObjects: 1200, Started: timestamppb.New(started)}
	if err := putJob(ctx, js.JS, rec); err != nil {
		t.Fatal(err)
	}
	out, err = amrctl(t, url, "-o", "json", "estimate", "--plan", plan.GetPlanId())
	var p estimate.Progress
	if err != nil || json.Unmarshal([]byte(out), &p) != nil {
		t.Fatalf("estimate --plan: %v\n%s", err, out)
	}
	if p.Jobs != 1 || p.Remaining != 600 || p.Rate < 9 || p.Rate > 10.5 || p.ETA.Seconds < 55 || p.ETA.Seconds > 70 {
		t.Errorf("estimate --plan: %+v, want 600 left at ~10 objects/s, ~1 min", p)
	}
	if _, err := amrctl(t, url, "estimate", "--plan", "no-such-plan"); !errors.Is(err, cli.ErrNotFound) {
		t.Errorf("unknown plan: %v, want not found", err)
	}
	for _, bad := range [][]string{
		{"estimate", "--site", plan.GetSiteUrl()},
		{"estimate", "--site", plan.GetSiteUrl(), "--target", "https://elsewhere.example/sites/x/Docs"},
		{"estimate", "--plan", "x", "--site", plan.GetSiteUrl()},
		{"estimate", "--concurrency", "0", "--plan", "x"},
	} {
		if _, err := amrctl(t, url, bad...); cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}

// putJob stores a job record as the relay would have left it (the key is the job id).
func putJob(ctx context.Context, js jetstream.JetStream, rec *amrpipev1.JobRecord) error {
	kv, err := js.KeyValue(ctx, topology.BucketJobs)
	if err != nil {
		return err
	}
	data, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, rec.GetJobId(), data)
	return err
}
