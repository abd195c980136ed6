package jobstore_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// node is a job of a planning tree as the stages leave it: its spec (with its parent), its
// submission, its record, and for a probe the planning of its result.
type node struct {
	spec       string
	parent     string
	probe      bool
	subfolders int    // probe findings on the record
	state      string // "" for no job (spec not submitted), else done, failed, running
	planning   string // probe result: "" none, "planned" (with the children below), "failed"
}

var treeStates = map[string]amrpipev1.JobState{"done": amrpipev1.JobState_JOB_STATE_DONE,
	"failed": amrpipev1.JobState_JOB_STATE_FAILED, "running": amrpipev1.JobState_JOB_STATE_RUNNING}

// jobID is the job id SharePoint gave a spec's job.
func jobID(spec string) string {
	sum := sha256.Sum256([]byte(spec))
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

// plant stores a tree: records, submissions, and each probe's planning naming its children.
func plant(t *testing.T, s *jobstore.Store, nodes []node) map[string]*amrpipev1.JobRecord {
	t.Helper()
	ctx := context.Background()
	specs := map[string]*amrpipev1.JobSpec{}
	for _, n := range nodes {
		specs[n.spec] = &amrpipev1.JobSpec{SpecId: n.spec, PlanId: "plan-1", ParentSpecId: n.parent, Probe: n.probe, ListIds: []string{"list-1"}}
		if n.parent == "" {
			specs[n.spec].TokenListId = "list-1"
		}
	}
	recs := map[string]*amrpipev1.JobRecord{}
	for _, n := range nodes {
		if n.state != "" {
			id := jobID(n.spec)
			if _, err := s.PutSubmission(ctx, n.spec, &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Job{
				Job: &amrpipev1.SubmittedJob{JobId: id, Spec: specs[n.spec]}}}); err != nil {
				t.Fatal(err)
			}
			rec, err := s.Update(ctx, id, func(r *amrpipev1.JobRecord) error {
				r.JobId, r.Spec, r.State, r.ChangeToken = id, specs[n.spec], treeStates[n.state], "token-of-"+n.spec
				for i := range n.subfolders {
					r.ProbeSubfolders = append(r.ProbeSubfolders, &amrpipev1.FolderSize{Url: fmt.Sprintf("/sub-%d", i)})
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			recs[n.spec] = rec
		}
		switch n.planning {
		case "planned":
			var children []*amrpipev1.JobSpec
			for _, c := range nodes {
				if c.parent == n.spec {
					children = append(children, specs[c.spec])
				}
			}
			if _, err := s.SavePlanning(ctx, jobstore.ProbeIndex(n.spec), "plan-1", children); err != nil {
				t.Fatal(err)
			}
		case "failed":
			if err := s.FailPlanning(ctx, jobstore.ProbeIndex(n.spec), "plan-1", "could not size a subfolder"); err != nil {
				t.Fatal(err)
			}
		}
	}
	return recs
}

// TestTreeDone: a list's token may be stored only once the job that read the list's root and every
// job planned below it (probe results, recursively) ended DONE.
func TestTreeDone(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	tests := []struct {
		name  string
		nodes []node
		from  string // the job TreeRoot starts from
		done  string // the spec whose job counts as DONE (being completed)
		want  bool
	}{
		{"a single job", []node{{spec: "s", state: "done"}}, "s", "", true},
		{"a single job being completed", []node{{spec: "s", state: "running"}}, "s", "s", true},
		{"a failed single job", []node{{spec: "s", state: "failed"}}, "s", "", false},
		{"probe and children done", []node{
			{spec: "p", probe: true, subfolders: 2, state: "done", planning: "planned"},
			{spec: "p-a", parent: "p", state: "done"},
			{spec: "p-b", parent: "p", probe: true, state: "done"}}, "p-a", "", true},
		{"a child failed", []node{
			{spec: "p", probe: true, subfolders: 2, state: "done", planning: "planned"},
			{spec: "p-a", parent: "p", state: "failed"},
			{spec: "p-b", parent: "p", state: "done"}}, "p-b", "", false},
		{"a child still running", []node{
			{spec: "p", probe: true, subfolders: 2, state: "done", planning: "planned"},
			{spec: "p-a", parent: "p", state: "running"},
			{spec: "p-b", parent: "p", state: "done"}}, "p-b", "", false},
		{"the last child being completed", []node{
			{spec: "p", probe: true, subfolders: 2, state: "done", planning: "planned"},
			{spec: "p-a", parent: "p", state: "running"},
			{spec: "p-b", parent: "p", state: "done"}}, "p-a", "p-a", true},
		{"the probe's result not planned yet", []node{
			{spec: "p", probe: true, subfolders: 3, state: "done"}}, "p", "", false},
		{"a probe without subfolders", []node{
			{spec: "p", probe: true, state: "done"}}, "p", "", true},
		{"the probe's planning dead-lettered", []node{
			{spec: "p", probe: true, subfolders: 1, state: "done", planning: "failed"}}, "p", "", false},
		{"a child spec without a job", []node{
			{spec: "p", probe: true, subfolders: 2, state: "done", planning: "planned"},
			{spec: "p-a", parent: "p"},
			{spec: "p-b", parent: "p", state: "done"}}, "p-b", "", false},
		{"a grandchild failed", []node{
			{spec: "p", probe: true, subfolders: 1, state: "done", planning: "planned"},
			{spec: "p-q", parent: "p", probe: true, subfolders: 1, state: "done", planning: "planned"},
			{spec: "p-q-a", parent: "p-q", state: "failed"}}, "p-q", "", false},
		{"grandchildren done", []node{
			{spec: "p", probe: true, subfolders: 1, state: "done", planning: "planned"},
			{spec: "p-q", parent: "p", probe: true, subfolders: 1, state: "done", planning: "planned"},
			{spec: "p-q-a", parent: "p-q", state: "done"}}, "p-q-a", "", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, env)
			// Each case its own plan of spec ids, so that cases do not see each other's trees.
			for j := range tt.nodes {
				tt.nodes[j].spec = fmt.Sprintf("c%d-%s", i, tt.nodes[j].spec)
				if tt.nodes[j].parent != "" {
					tt.nodes[j].parent = fmt.Sprintf("c%d-%s", i, tt.nodes[j].parent)
				}
			}
			recs := plant(t, s, tt.nodes)
			ctx := context.Background()
			root, err := s.TreeRoot(ctx, recs[fmt.Sprintf("c%d-%s", i, tt.from)])
			if err != nil {
				t.Fatal(err)
			}
			if root.GetSpec().GetParentSpecId() != "" || root.GetSpec().GetTokenListId() != "list-1" {
				t.Fatalf("root %v: want the job without a parent", root.GetSpec())
			}
			done := ""
			if tt.done != "" {
				done = jobID(fmt.Sprintf("c%d-%s", i, tt.done))
			}
			got, err := s.TreeDone(ctx, root, done)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("TreeDone = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTreeRootOfAnOrphan: a job whose parent spec has no job cannot be placed in a tree.
func TestTreeRootOfAnOrphan(t *testing.T) {
	t.Parallel()
	s := open(t, testenv.StartJetStream(t))
	recs := plant(t, s, []node{{spec: "lost"}, {spec: "child", parent: "lost", state: "done"}})
	root, err := s.TreeRoot(context.Background(), recs["child"])
	if err != nil || root != nil {
		t.Fatalf("TreeRoot = %v, %v; want no root", root, err)
	}
}
