package progress_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/progress"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func rec(id string, st amrpipev1.JobState, done, total, records int64) *amrpipev1.JobRecord {
	return &amrpipev1.JobRecord{JobId: id, State: st, ObjectsProcessed: done, ExpectedObjects: total, Records: records,
		Spec: &amrpipev1.JobSpec{Multi: true, Urls: []string{"https://t/sites/a/Docs/f1", "https://t/sites/a/Docs/f2"}}}
}

func TestDisplayTracksJobsToTheEnd(t *testing.T) {
	for _, bars := range []bool{false, true} {
		var out bytes.Buffer
		d := progress.New(&out, bars)
		d.Update(rec("a", amrpipev1.JobState_JOB_STATE_RUNNING, 10, 100, 0))
		d.Update(rec("b", amrpipev1.JobState_JOB_STATE_QUEUED, 0, 0, 0))
		if d.AllDone() {
			t.Fatal("AllDone with running jobs")
		}
		d.Update(rec("a", amrpipev1.JobState_JOB_STATE_DONE, 100, 100, 100))
		d.Update(rec("b", amrpipev1.JobState_JOB_STATE_FAILED, 3, 50, 0))
		if !d.AllDone() {
			t.Fatal("not AllDone after every job finished")
		}
		d.Close()
		s := d.Summary()
		if s.Jobs != 2 || s.ByState["done"] != 1 || s.ByState["failed"] != 1 || s.Records != 100 || s.Objects != 103 {
			t.Fatalf("bars=%v summary %+v", bars, s)
		}
		if !bars && (!strings.Contains(out.String(), "multi×2") || !strings.Contains(out.String(), "done")) {
			t.Fatalf("plain output lacks the job label or state:\n%s", out.String())
		}
	}
}

// TestDoneJobsCountWhatTheyExported: an incremental job SharePoint sized by its whole list (1.1M)
// but that exported 154 changes counts 154 of 154 once done, so the totals add up.
func TestDoneJobsCountWhatTheyExported(t *testing.T) {
	d := progress.New(&bytes.Buffer{}, false)
	d.Update(rec("inc", amrpipev1.JobState_JOB_STATE_DONE, 154, 1120188, 160))
	d.Update(rec("run", amrpipev1.JobState_JOB_STATE_RUNNING, 10, 100, 0))
	d.Close()
	if s := d.Summary(); s.Objects != 164 || s.Expected != 254 {
		t.Fatalf("summary %+v, want 164 objects of 254", s)
	}
}
