// Package estimate turns a plan's jobs into what a user asks before an export: how many AMR jobs
// of which kind, how many objects, and how long at SharePoint's published rates; and, for a plan
// already running, how long is left at the rate measured so far.
//
// The model (docs/amrctl.md, "estimate"): Microsoft's AMR guidance gives "more than 400 items
// per second throughput for every 250K of objects read" in preliminary tests and "over 700 items
// per second" in a testing environment, without throttling. So one job reads between 400
// (slow end) and 700 (fast end) objects per second; jobs SharePoint runs at once add up, and
// the plan ends when the last of them ends (longest-first scheduling on the running slots). Small
// jobs read slower than that (the same page: AMR is "not as effective when reading a small set
// of items"), so the fast end is a floor, not a promise; throttling comes on top.
package estimate

import (
	"cmp"
	"slices"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// SharePoint's published AMR rates, in objects per second per job.
const (
	SlowRate = 400.0
	FastRate = 700.0
)

// Kinds of jobs a plan creates.
const (
	KindSecurity    = "security"
	KindIncremental = "incremental"
	KindProbe       = "probe"
	KindMultiURL    = "multi-url"
	KindSingle      = "single"
)

// Job is one job the planner would create.
type Job struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	URLs    []string `json:"urls"`
	Objects int64    `json:"objects"` // -1 when unknown
}

// Estimate is a plan's jobs, objects and ETA range.
type Estimate struct {
	PlanID      string         `json:"plan_id"`
	Jobs        []Job          `json:"jobs"`
	JobCount    int            `json:"job_count"`
	ByKind      map[string]int `json:"by_kind"`
	Objects     int64          `json:"objects"`
	Concurrency int            `json:"concurrency"`
	// ETAFast and ETASlow bound the run: at FastRate and at SlowRate per job.
	ETAFast Duration `json:"eta_fast"`
	ETASlow Duration `json:"eta_slow"`
}

// Duration prints as Go duration text in JSON ("1h2m3s") and keeps seconds for scripts.
type Duration struct {
	Text    string  `json:"text"`
	Seconds float64 `json:"seconds"`
}

func duration(d time.Duration) Duration {
	d = d.Round(time.Second)
	return Duration{Text: d.String(), Seconds: d.Seconds()}
}

// KindOf names the kind of a planned job.
func KindOf(j sizing.JobSpec) string {
	switch {
	case j.Emit == sizing.EmitSecurityOnly:
		return KindSecurity
	case j.Options.StartChangeToken != "":
		return KindIncremental
	case j.Probe:
		return KindProbe
	case j.Multi:
		return KindMultiURL
	default:
		return KindSingle
	}
}

// Plan estimates the planner's jobs. size gives the objects of a job whose Items the planner
// left unknown (a probe: the folder's total, which its follow-up jobs read); it returns -1 when
// it does not know either.
func Plan(planID string, specs []sizing.JobSpec, concurrency int, size func(sizing.JobSpec) int64) Estimate {
	e := Estimate{PlanID: planID, ByKind: map[string]int{}, Concurrency: max(concurrency, 1)}
	var objects []int64
	for _, s := range specs {
		n := s.Items
		if n < 0 && size != nil {
			n = size(s)
		}
		j := Job{ID: s.ID, Kind: KindOf(s), URLs: s.URLs, Objects: n}
		e.Jobs = append(e.Jobs, j)
		e.ByKind[j.Kind]++
		if n > 0 {
			e.Objects += n
			objects = append(objects, n)
		}
	}
	e.JobCount = len(e.Jobs)
	e.ETAFast = duration(Makespan(objects, e.Concurrency, FastRate))
	e.ETASlow = duration(Makespan(objects, e.Concurrency, SlowRate))
	return e
}

// Makespan is how long jobs of these sizes take on slots running at rate objects per second
// each, the longest job started first on the first free slot.
func Makespan(objects []int64, slots int, rate float64) time.Duration {
	sorted := slices.SortedFunc(slices.Values(objects), func(a, b int64) int { return cmp.Compare(b, a) })
	busy := make([]float64, max(slots, 1)) // seconds of work per slot
	for _, n := range sorted {
		i := slices.Index(busy, slices.Min(busy))
		busy[i] += float64(n) / rate
	}
	return time.Duration(slices.Max(busy) * float64(time.Second))
}

// Progress is a running plan's numbers from its job records.
type Progress struct {
	PlanID    string  `json:"plan_id"`
	Jobs      int     `json:"jobs"`
	Done      int     `json:"done"`
	Objects   int64   `json:"objects"`   // expected, as SharePoint reports it
	Processed int64   `json:"processed"` // read so far
	Remaining int64   `json:"remaining"`
	Rate      float64 `json:"rate"` // objects per second since the first job started
	// ETA is Remaining at Rate; zero when no rate was measured yet.
	ETA Duration `json:"eta"`
}

// Running measures a plan from its job records at now: objects processed over the time since
// the first job started, and the remaining objects at that rate.
func Running(planID string, jobs []*amrpipev1.JobRecord, now time.Time) Progress {
	p := Progress{PlanID: planID}
	var first time.Time
	for _, j := range jobs {
		if j.GetSpec().GetPlanId() != planID {
			continue
		}
		p.Jobs++
		processed, expected := j.GetObjectsProcessed(), max(j.GetExpectedObjects(), j.GetObjectsProcessed())
		done := j.GetState() == amrpipev1.JobState_JOB_STATE_DONE || j.GetState() == amrpipev1.JobState_JOB_STATE_FAILED
		if done {
			p.Done++
			expected = processed
		}
		p.Objects += expected
		p.Processed += processed
		if s := j.GetStarted(); s != nil && (first.IsZero() || s.AsTime().Before(first)) {
			first = s.AsTime()
		}
	}
	p.Remaining = max(p.Objects-p.Processed, 0)
	if secs := now.Sub(first).Seconds(); !first.IsZero() && secs > 0 && p.Processed > 0 {
		p.Rate = float64(p.Processed) / secs
		p.ETA = duration(time.Duration(float64(p.Remaining) / p.Rate * float64(time.Second)))
	}
	return p
}
