package estimate_test

import (
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/estimate"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
)

// TestMakespan: jobs run longest first on the free slot; the plan ends with the busiest slot.
func TestMakespan(t *testing.T) {
	tests := []struct {
		name    string
		objects []int64
		slots   int
		want    time.Duration
	}{
		{"nothing", nil, 1, 0},
		{"one job at 400/s", []int64{400_000}, 1, 1000 * time.Second},
		{"sequential adds up", []int64{200_000, 200_000}, 1, 1000 * time.Second},
		{"two slots halve it", []int64{200_000, 200_000}, 2, 500 * time.Second},
		{"the longest job bounds it", []int64{400_000, 4_000, 4_000}, 4, 1000 * time.Second},
		{"longest first", []int64{100_000, 100_000, 200_000}, 2, 500 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := estimate.Makespan(tt.objects, tt.slots, estimate.SlowRate); got != tt.want {
				t.Errorf("Makespan = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPlan counts kinds and takes a probe's size from the callback.
func TestPlan(t *testing.T) {
	specs := []sizing.JobSpec{
		{ID: "s", Emit: sizing.EmitSecurityOnly, Items: 0},
		{ID: "p", Probe: true, URLs: []string{"https://t/sites/a/Docs"}, Items: -1},
		{ID: "m", Multi: true, URLs: []string{"u1", "u2"}, Items: 70_000},
		{ID: "one", URLs: []string{"u3"}, Items: 30_000},
	}
	e := estimate.Plan("plan-1", specs, 1, func(j sizing.JobSpec) int64 { return 300_000 })
	if e.JobCount != 4 || e.ByKind[estimate.KindProbe] != 1 || e.ByKind[estimate.KindSecurity] != 1 || e.ByKind[estimate.KindMultiURL] != 1 || e.ByKind[estimate.KindSingle] != 1 {
		t.Errorf("kinds %v of %d jobs", e.ByKind, e.JobCount)
	}
	if e.Objects != 400_000 || e.ETASlow.Seconds != 1000 || e.ETAFast.Text != "9m31s" {
		t.Errorf("%d objects, ETA %v to %v", e.Objects, e.ETAFast, e.ETASlow)
	}
}
