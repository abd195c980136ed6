package jobstore_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func TestJobsListsTheLatestRecordOfEveryJob(t *testing.T) {
	env := testenv.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := jobstore.Open(ctx, env.JS, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		for _, state := range []amrpipev1.JobState{amrpipev1.JobState_JOB_STATE_RUNNING, amrpipev1.JobState_JOB_STATE_DONE} {
			if _, err := st.Update(ctx, id, func(r *amrpipev1.JobRecord) error { r.State = state; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	jobs, err := st.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		if j.GetState() != amrpipev1.JobState_JOB_STATE_DONE {
			t.Errorf("job %s listed as %s, want its latest state DONE", j.GetJobId(), j.GetState())
		}
		got = append(got, j.GetJobId())
	}
	sort.Strings(got)
	if len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Fatalf("jobs %v, want a b c", got)
	}
	// A look leaves no reader behind: watchdogs and dashboards look every few seconds, and the
	// server refuses consumers beyond its limit.
	for range 20 {
		if _, err := st.Jobs(ctx); err != nil {
			t.Fatal(err)
		}
	}
	str, err := env.JS.Stream(ctx, topology.KVStream(topology.BucketJobs))
	if err != nil {
		t.Fatal(err)
	}
	if n := str.CachedInfo().State.Consumers; n != 0 {
		t.Fatalf("%d consumers left on the job records' stream after 21 looks, want 0", n)
	}
}
