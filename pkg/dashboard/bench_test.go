package dashboard

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// BenchmarkSnapshot is the cost of one event at the bounds: 5,000 jobs shown of 20,000, 200
// plans, 100 dead letters; encoded once per change whatever the number of clients.
func BenchmarkSnapshot(b *testing.B) {
	s := newState(Options{}.withDefaults())
	now := time.Now()
	for i := range 20_000 {
		state := amrpipev1.JobState_JOB_STATE_DONE
		if i%4 == 0 {
			state = amrpipev1.JobState_JOB_STATE_RUNNING
		}
		s.putJob(&amrpipev1.JobRecord{JobId: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), State: state,
			Spec:             &amrpipev1.JobSpec{PlanId: fmt.Sprintf("plan-%03d", i%200), Urls: []string{fmt.Sprintf("https://contoso.sharepoint.com/sites/s%d/Shared Documents/f%d", i%50, i)}},
			ObjectsProcessed: int64(i), ExpectedObjects: 2 * int64(i), Records: int64(i), Started: timestamppb.New(now.Add(-time.Hour)),
			Updated: timestamppb.New(now.Add(time.Duration(i) * time.Millisecond))})
	}
	for i := range 100 {
		s.addDeadLetter(uint64(i), &amrpipev1.DeadLetter{Stage: "parser", Subject: "amr.manifests.x", Reason: "Manifest.xml: unexpected EOF at offset 1234", At: timestamppb.Now()}, false)
	}
	var size int
	for b.Loop() {
		s.mu.Lock()
		s.bump()
		s.mu.Unlock()
		data, _, err := s.snapshot(now)
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	b.ReportMetric(float64(size), "bytes/event")
}
