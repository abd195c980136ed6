package parser

import (
	"context"
	"errors"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestProbeTokenWaitsForItsTree: a probe on a library's root holds the library's change token,
// but the jobs planned from its result read the library's subfolders. The token is committed only
// once they all ended DONE; when one of them fails, never (the next incremental pass would skip
// what it did not deliver). Found by the chaos suite: a failed job of a probe's subfolders left the
// library's token committed.
func TestProbeTokenWaitsForItsTree(t *testing.T) {
	for _, tt := range []struct {
		name  string
		child string // how the job planned from the probe's result ends: JobEnd or JobFatalError
		token bool
	}{
		{"every job of the tree done", topology.EventJobEnd, true},
		{"a job of the tree failed", topology.EventJobFatalError, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.startParser(Config{BatchSize: 16})
			ctx := context.Background()
			lib := probeSpec().GetListIds()[0]

			probe := newJob("55555555-aaaa-4bbb-8ccc-000000000001", probeSpec(), "probe-token").
				add("Manifest.xml", h.fixture("probe/Manifest.xml")).add("Manifest1.xml", h.fixture("probe/Manifest1.xml"))
			probe.spec.TokenListId = lib
			h.submitted(probe)
			h.run(probe)
			h.settled(probe.id, inState(amrpipev1.JobState_JOB_STATE_DONE))
			if _, _, err := h.store.Token(ctx, lib); !errors.Is(err, jobstore.ErrNotFound) {
				t.Fatalf("token committed when the probe completed, before its subfolders were exported (%v)", err)
			}

			// The planner plans the probe's result: one job for the subfolders.
			child := contentJob(h, "55555555-aaaa-4bbb-8ccc-000000000002")
			child.spec.SpecId, child.spec.PlanId, child.spec.ParentSpecId = "child-spec", probe.spec.GetPlanId(), probe.spec.GetSpecId()
			child.spec.TokenListId, child.spec.ListIds, child.token = "", []string{lib}, "child-token"
			if _, err := h.store.SavePlanning(ctx, jobstore.ProbeIndex(probe.spec.GetSpecId()), probe.spec.GetPlanId(),
				[]*amrpipev1.JobSpec{child.spec}); err != nil {
				t.Fatal(err)
			}
			h.submitted(child)
			h.putJob(child.id, child.spec, child.token, child.order...)
			for _, f := range child.order {
				h.ready(h.putFile(child.id, f, child.files[f]), child.id+"/"+f)
			}
			h.end(child.id, tt.child, "end-"+child.id)
			h.settled(child.id, inState(amrpipev1.JobState_JOB_STATE_DONE, amrpipev1.JobState_JOB_STATE_FAILED))

			tok, _, err := h.store.Token(ctx, lib)
			switch {
			case tt.token && err != nil:
				t.Fatalf("token not committed once the whole tree was done: %v", err)
			case tt.token && (tok.GetToken() != "probe-token" || tok.GetJobId() != probe.id):
				t.Errorf("stored token %v, want the probe's", tok)
			case !tt.token && !errors.Is(err, jobstore.ErrNotFound):
				t.Errorf("token %v committed although a job of the tree failed (%v)", tok, err)
			}
		})
	}
}

// submitted stores a job's submission as the submitter does, so that the job can be found from
// its spec id.
func (h *harness) submitted(j *job) {
	h.t.Helper()
	sub := &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Job{Job: &amrpipev1.SubmittedJob{JobId: j.id, Spec: j.spec}}}
	if _, err := h.store.PutSubmission(context.Background(), j.spec.GetSpecId(), sub); err != nil {
		h.t.Fatal(err)
	}
}
