package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// amrctlIO runs amrctl with stdout and stderr apart.
func amrctlIO(t *testing.T, url string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cli.Root()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"--nats-url", url}, args...))
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// decodePlans decodes `plan submit -o json`.
func decodePlans(t *testing.T, out string) []*amrpipev1.PlanRequest {
	t.Helper()
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("plan submit -o json: %v\n%s", err, out)
	}
	plans := make([]*amrpipev1.PlanRequest, len(raw))
	for i, r := range raw {
		plans[i] = &amrpipev1.PlanRequest{}
		if err := protojson.Unmarshal(r, plans[i]); err != nil {
			t.Fatal(err)
		}
	}
	return plans
}

// TestPlanSubmitValidatesBeforePublishing: a bad site, target, id or CSV row is a usage error
// (exit 2) naming what to fix, and nothing is published; a target with a comma stays one target;
// a CSV file in SPMT's layout makes one plan per site.
func TestPlanSubmitValidatesBeforePublishing(t *testing.T) {
	env := testenv.StartJetStream(t)
	url := env.Server.ClientURL()
	dir := t.TempDir()
	csvFile := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const site = "https://contoso.sharepoint.com/sites/hr"
	bad := []struct {
		name string
		args []string
		want string
	}{
		{"relative site", []string{"--site", "/sites/hr", "--target", site + "/Docs"}, `--site "/sites/hr" is not an absolute http(s) URL`},
		{"no target", []string{"--site", site}, "no target"},
		{"target on another host", []string{"--site", site, "--target", site + "/Docs", "--target", "https://fabrikam.sharepoint.com/sites/hr/Docs"},
			`--target 2: target "https://fabrikam.sharepoint.com/sites/hr/Docs" is not on the site's host`},
		{"target outside the site", []string{"--site", site, "--target", "https://contoso.sharepoint.com/sites/hr-old/Docs"}, "--target 1: target \"https://contoso.sharepoint.com/sites/hr-old/Docs\" is not under the site"},
		{"target twice", []string{"--site", site, "--target", site + "/Docs", "--target", site + "/docs/"}, "--target 2: target \"" + site + "/docs/\" is given twice (first at --target 1)"},
		{"target with a query", []string{"--site", site, "--target", site + "/Docs?sig=x"}, "has a query or fragment"},
		{"id with a dot", []string{"--site", site, "--target", site + "/Docs", "--id", "plan.1"}, `--id "plan.1"`},
		{"csv and site", []string{"--from-csv", "x.csv", "--site", site}, "--from-csv names sites and targets itself"},
		{"csv row without a library", []string{"--from-csv", csvFile("nolib.csv", "a,,,"+site+",Docs,\nb,,,"+site+",,\n")}, "nolib.csv row 2: no Target DocLib"},
		{"csv row with five columns", []string{"--from-csv", csvFile("short.csv", "a,,,"+site+",Docs\n")}, "short.csv row 1: 5 columns"},
		{"csv row registering a hub", []string{"--from-csv", csvFile("hub.csv", "a,,,"+site+",Docs,,HR hub,\n")}, "hub.csv row 1: column 7 (hub site) is set"},
		{"csv target off the site", []string{"--from-csv", csvFile("rel.csv", "a,,,/sites/hr,Docs,\n")}, `--site "/sites/hr" is not an absolute`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := amrctlIO(t, url, append([]string{"plan", "submit"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || cli.ExitCode(err) != cli.ExitUsage {
				t.Fatalf("err %v (exit %d), want a usage error saying %q", err, cli.ExitCode(err), tt.want)
			}
		})
	}
	s, err := env.JS.Stream(context.Background(), topology.StreamPlans)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(context.Background()); err != nil || info.State.Msgs != 0 {
		t.Fatalf("AMR_PLANS after refused submissions: %v, %d messages, want none", err, info.State.Msgs)
	}

	out, _, err := amrctlIO(t, url, "plan", "submit", "-o", "json", "--site", site, "--target", site+"/Shared Documents/Reports, 2024", "--target", site+"/Lists/Tasks", "--versions")
	if err != nil {
		t.Fatal(err)
	}
	plans := decodePlans(t, out)
	if len(plans) != 1 || len(plans[0].GetTargets()) != 2 || plans[0].GetTargets()[0] != site+"/Shared Documents/Reports, 2024" ||
		!plans[0].GetOptions().GetIncludeVersions() || topology.CheckToken(plans[0].GetPlanId()) != nil {
		t.Fatalf("submitted %v: want one plan of two targets, the first with its comma", plans)
	}
	out, _, err = amrctlIO(t, url, "plan", "submit", "-o", "json", "--from-csv", filepath.Join("testdata", "spmt-bulk.csv"))
	if err != nil {
		t.Fatal(err)
	}
	plans = decodePlans(t, out)
	want := [][]string{
		{"https://contoso.sharepoint.com/sites/hr", "https://contoso.sharepoint.com/sites/hr/Shared Documents/Reports, 2024", "https://contoso.sharepoint.com/sites/hr/Policies"},
		{"https://contoso.sharepoint.com/sites/finance", "https://contoso.sharepoint.com/sites/finance/Shared Documents/Budgets/2025"},
	}
	if len(plans) != len(want) {
		t.Fatalf("CSV made %d plans, want %d: %v", len(plans), len(want), plans)
	}
	for i, p := range plans {
		got := append([]string{p.GetSiteUrl()}, p.GetTargets()...)
		if strings.Join(got, "|") != strings.Join(want[i], "|") {
			t.Errorf("plan %d: %q, want %q", i, got, want[i])
		}
	}
	if info, err := s.Info(context.Background()); err != nil || info.State.Msgs != 3 {
		t.Fatalf("AMR_PLANS holds %d plans, want 3", info.State.Msgs)
	}
}

// TestPlanWaitStatusListAndJobs: `plan submit --wait` follows a plan the planner records under
// the printed id until it ends, and fails when it ended incomplete; `plan status`, `plan list`
// and `jobs --plan --state` show the same plan.
func TestPlanWaitStatusListAndJobs(t *testing.T) {
	env := testenv.StartJetStream(t)
	url := env.Server.ClientURL()
	ctx := context.Background()
	store, err := jobstore.Open(ctx, env.JS, nil)
	if err != nil {
		t.Fatal(err)
	}
	const site = "https://contoso.sharepoint.com/sites/hr"
	type result struct {
		stdout, stderr string
		err            error
	}
	done := make(chan result, 1)
	go func() {
		o, e, err := amrctlIO(t, url, "plan", "submit", "--id", "hr-1", "--site", site, "--target", site+"/Docs", "--target", site+"/Lists/Tasks",
			"--wait", "--interval", "20ms", "-o", "json")
		done <- result{o, e, err}
	}()
	// The planner's part: two specs, one job done and one failed.
	specs := []*amrpipev1.JobSpec{{SpecId: "hr-1-a", PlanId: "hr-1", SiteUrl: site}, {SpecId: "hr-1-b", PlanId: "hr-1", SiteUrl: site}}
	p, err := store.SavePlanning(ctx, jobstore.PlanIndex("hr-1"), "hr-1", specs)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.MarkPublished(ctx, jobstore.PlanIndex("hr-1"), p); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, spec := range specs {
		job := &amrpipev1.SubmittedJob{JobId: "job-" + spec.GetSpecId(), Spec: spec, Submitted: timestamppb.New(now)}
		if _, err := store.PutSubmission(ctx, spec.GetSpecId(), &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Job{Job: job}}); err != nil {
			t.Fatal(err)
		}
		ts := []jobstore.Transition{jobstore.Accepted(job), jobstore.Started(now)}
		if i == 0 {
			ts = append(ts, jobstore.EndSeen(now, &amrpipev1.JobStats{ObjectsProcessed: 10}), jobstore.EndConfirmed(), jobstore.Completed())
		} else {
			ts = append(ts, jobstore.Failed("JobFatalError: the list is gone", true))
		}
		if _, err := store.Fire(ctx, job.GetJobId(), ts...); err != nil {
			t.Fatal(err)
		}
	}
	res := <-done
	if !errors.Is(res.err, cli.ErrIncomplete) || cli.ExitCode(res.err) != cli.ExitFailed {
		t.Fatalf("plan submit --wait: %v (exit %d), want the plan incomplete (exit 1)\nstderr:\n%s", res.err, cli.ExitCode(res.err), res.stderr)
	}
	var statuses []json.RawMessage
	if err := json.Unmarshal([]byte(res.stdout), &statuses); err != nil || len(statuses) != 1 {
		t.Fatalf("--wait -o json printed %q: %v", res.stdout, err)
	}
	st := &amrpipev1.PlanStatus{}
	if err := protojson.Unmarshal(statuses[0], st); err != nil || st.GetPlanId() != "hr-1" || !st.GetComplete() || st.GetJobsDone() != 1 || st.GetJobsFailed() != 1 {
		t.Fatalf("final status %v: %v", st, err)
	}
	if !strings.Contains(res.stderr, "submitted plan hr-1") || !strings.Contains(res.stderr, "plan hr-1: ended incomplete") {
		t.Errorf("progress on stderr lacks the submission or the end:\n%s", res.stderr)
	}

	// plan status takes the printed id.
	out, _, err := amrctlIO(t, url, "plan", "status", "hr-1", "-o", "json")
	if !errors.Is(err, cli.ErrIncomplete) {
		t.Fatalf("plan status: %v", err)
	}
	if err := protojson.Unmarshal([]byte(out), st); err != nil || len(st.GetSpecs()) != 2 {
		t.Fatalf("plan status -o json: %v\n%s", err, out)
	}
	if _, _, err := amrctlIO(t, url, "plan", "status", "nobody-planned-this"); cli.ExitCode(err) != cli.ExitNotFound {
		t.Fatalf("plan status of an unknown plan: %v (exit %d), want exit 3", err, cli.ExitCode(err))
	}
	// The run report of the plan, as a script reads it.
	out, _, err = amrctlIO(t, url, "report", "--plan", "hr-1", "--out", t.TempDir(), "-o", "json")
	var report struct {
		PlanID string   `json:"plan_id"`
		Status string   `json:"status"`
		Files  []string `json:"files"`
	}
	if err != nil || json.Unmarshal([]byte(out), &report) != nil || report.PlanID != "hr-1" || len(report.Files) != 5 {
		t.Fatalf("report -o json: %v\n%s", err, out)
	}
	out, _, err = amrctlIO(t, url, "plan", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		PlanID    string `json:"plan_id"`
		State     string `json:"state"`
		JobsDone  int64  `json:"jobs_done"`
		JobsFaild int64  `json:"jobs_failed"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].PlanID != "hr-1" || list[0].State != "ended incomplete" ||
		list[0].JobsDone != 1 || list[0].JobsFaild != 1 {
		t.Fatalf("plan list -o json: %v\n%s", err, out)
	}

	// jobs watch -o json: a JSON line per job record, until interrupted.
	wr, ww, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	root := cli.Root()
	root.SetOut(ww)
	root.SetArgs([]string{"--nats-url", url, "jobs", "watch", "-o", "json"})
	watched := make(chan error, 1)
	go func() { watched <- root.ExecuteContext(wctx); ww.Close() }()
	seen := map[string]string{}
	dec := json.NewDecoder(wr)
	for len(seen) < 2 {
		var rec struct {
			JobID string `json:"job_id"`
			State string `json:"state"`
		}
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("jobs watch -o json: %v after %v", err, seen)
		}
		seen[rec.JobID] = rec.State
	}
	stop()
	if err := <-watched; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("jobs watch: %v", err)
	}
	if seen["job-hr-1-a"] != "JOB_STATE_DONE" || seen["job-hr-1-b"] != "JOB_STATE_FAILED" {
		t.Errorf("jobs watch -o json saw %v", seen)
	}

	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--plan", "hr-1"}, []string{"job-hr-1-a", "job-hr-1-b"}},
		{[]string{"--plan", "hr-1", "--state", "failed"}, []string{"job-hr-1-b"}},
		{[]string{"--state", "done"}, []string{"job-hr-1-a"}},
		{[]string{"--plan", "hr-2"}, nil},
	} {
		out, _, err := amrctlIO(t, url, append([]string{"jobs", "-o", "json"}, tt.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var recs []map[string]any
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			t.Fatalf("jobs %v -o json: %v\n%s", tt.args, err, out)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r["job_id"].(string))
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("jobs %v: %v, want %v", tt.args, got, tt.want)
		}
	}
	if _, _, err := amrctlIO(t, url, "jobs", "--state", "sleeping"); cli.ExitCode(err) != cli.ExitUsage {
		t.Errorf("jobs --state sleeping: %v, want a usage error", err)
	}
}
