package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestViewNeverSaysDoneBeforeTheJobIs: a running job whose count reached SharePoint's total so
// far (which grows while the job runs) shows 99 %, not 100 % or "done"; an unknown total shows
// "?" and no ETA.
func TestViewNeverSaysDoneBeforeTheJobIs(t *testing.T) {
	running, done := amrpipev1.JobState_JOB_STATE_RUNNING, amrpipev1.JobState_JOB_STATE_DONE
	for _, tc := range []struct {
		v                     view
		counts, percent, rest string
	}{
		{view{state: running, processed: 40001, total: 40001, speed: 400}, "40,001/40,001", "99%", "400 obj/s"},
		{view{state: running, processed: 20000, total: 80004, speed: 1000}, "20,000/80,004", "24%", "1,000 obj/s  ETA 1:00"},
		{view{state: running, processed: 500, speed: 100}, "500/?", "-", "100 obj/s"},
		{view{state: running, processed: 900, total: 800, speed: 10}, "900/900", "99%", "10 obj/s"},
		{view{state: done, processed: 80004, total: 80004}, "80,004/80,004", "100%", ""},
	} {
		if got := tc.v.counts(); got != tc.counts {
			t.Errorf("%+v counts = %q, want %q", tc.v, got, tc.counts)
		}
		if got := tc.v.percent(); got != tc.percent {
			t.Errorf("%+v percent = %q, want %q", tc.v, got, tc.percent)
		}
		if got := tc.v.speedAndETA(); got != tc.rest {
			t.Errorf("%+v speedAndETA = %q, want %q", tc.v, got, tc.rest)
		}
	}
}

// TestBarsGrowWithSharePointsTotal: on the drawn display a job of 80,004 objects whose total
// SharePoint first reported as 40,001 ends showing 80,004, and the totals line adds the jobs up.
func TestBarsGrowWithSharePointsTotal(t *testing.T) {
	var out bytes.Buffer
	d := New(&out, true)
	t0 := time.Now()
	upd := func(st amrpipev1.JobState, n, total int64, at time.Duration) {
		d.Update(&amrpipev1.JobRecord{JobId: "a", State: st, ObjectsProcessed: n, ExpectedObjects: total, Records: n,
			Started: timestamppb.New(t0), Updated: timestamppb.New(t0.Add(at)),
			Spec: &amrpipev1.JobSpec{SiteUrl: "https://t/sites/archive", Urls: []string{"https://t/sites/archive/Records/2020"}}})
	}
	upd(amrpipev1.JobState_JOB_STATE_RUNNING, 40001, 40001, 10*time.Second)
	if s := d.Summary(); s.ByState["running"] != 1 || d.AllDone() {
		t.Fatalf("a job whose count reached the total so far is %+v", s)
	}
	upd(amrpipev1.JobState_JOB_STATE_RUNNING, 60000, 80004, 15*time.Second)
	upd(amrpipev1.JobState_JOB_STATE_DONE, 80004, 80004, 20*time.Second)
	d.Close()
	text := out.String()
	for _, want := range []string{"archive › Records/2020", "80,004/80,004", "100%", "total       1 jobs (1 done)  objects 80,004/80,004  records 80,004"} {
		if !strings.Contains(text, want) {
			t.Errorf("the display never showed %q:\n%s", want, text)
		}
	}
}
