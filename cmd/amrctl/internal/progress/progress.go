// Package progress shows AMR jobs as they move: one live row per job (kind, site and target,
// state, objects, %, objects/s, ETA) and a totals line, fed from the watchable job records. On a
// terminal it draws bars with mpb (chosen over single-bar libraries because it renders many
// concurrent bars); elsewhere it prints a line per state change and a totals line every
// plainTotalsEvery, so logs of non-interactive runs stay readable.
//
// A job's total is what SharePoint has reported so far (TotalExpectedSPObjects grows while a job
// runs), so a bar's total grows with it and a job is shown complete only when its record says
// done or failed, never because its count caught up with a total that later grew.
package progress

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// plainTotalsEvery is how often the plain (non-terminal) display prints the totals line.
const plainTotalsEvery = 15 * time.Second

// Display renders job progress.
type Display struct {
	mu         sync.Mutex
	out        io.Writer
	bars       *mpb.Progress // nil when not drawing bars
	totalsBar  *mpb.Bar
	totals     atomic.Pointer[string] // the totals line the totals bar draws
	jobs       map[string]*job
	order      []string
	start      time.Time
	lastTotals time.Time
}

type job struct {
	bar  *mpb.Bar
	rec  *amrpipev1.JobRecord
	rate rate
	// view is what the row draws: mpb renders from its own goroutine while Update holds the
	// display's lock, so the row reads an immutable snapshot.
	view atomic.Pointer[view]
}

// view is one job's row as drawn.
type view struct {
	state            amrpipev1.JobState
	processed, total int64   // total 0: SharePoint has not said yet
	speed            float64 // objects/s, 0 when unknown
}

// New returns a display writing to out; bars draws live bars (use it on terminals).
func New(out io.Writer, bars bool) *Display {
	now := time.Now()
	// The plain display's first totals line comes plainTotalsEvery in, not with the first job.
	d := &Display{out: out, jobs: map[string]*job{}, start: now, lastTotals: now}
	d.totals.Store(new(string))
	if bars {
		// The caller says out is a terminal; WithAutoRefresh keeps mpb drawing on any writer (tests),
		// where WithWidth is the line width (a terminal's own width wins).
		d.bars = mpb.New(mpb.WithOutput(out), mpb.WithAutoRefresh(), mpb.WithWidth(160), mpb.WithRefreshRate(150*time.Millisecond))
		// The totals line stays below every job's row; its total stays 0 so that only Close
		// completes it.
		d.totalsBar = d.bars.New(0, mpb.NopStyle(), mpb.BarPriority(math.MaxInt),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return *d.totals.Load() })))
	}
	return d
}

// Update shows a job record's new state.
func (d *Display) Update(rec *amrpipev1.JobRecord) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := rec.GetJobId()
	j := d.jobs[id]
	if j == nil {
		j = &job{}
		d.jobs[id] = j
		d.order = append(d.order, id)
	}
	prev := j.rec
	if prev != nil && rec.GetUpdated().AsTime().Before(prev.GetUpdated().AsTime()) {
		return // a stale value (a watch lagging behind a snapshot)
	}
	j.rec = rec
	j.rate.observe(rec)
	v := &view{state: rec.GetState(), processed: rec.GetObjectsProcessed(), total: rec.GetExpectedObjects(), speed: j.rate.perSecond}
	if v.state != amrpipev1.JobState_JOB_STATE_RUNNING {
		v.speed = 0
	}
	if v.state == amrpipev1.JobState_JOB_STATE_DONE {
		// A done job exported what it processed: an incremental job's total is its whole list
		// (SharePoint counts every object it looked at), of which it exports only the changes.
		v.total = v.processed
	}
	j.view.Store(v)
	d.totals.Store(ptr(d.totalsLine()))
	if d.bars == nil {
		if prev == nil || prev.GetState() != rec.GetState() {
			fmt.Fprintf(d.out, "%7s  %s  %-9s %s  records %d\n", time.Since(d.start).Truncate(time.Second), Label(rec), jobstore.StateName(v.state),
				v.counts(), rec.GetRecords())
		}
		if time.Since(d.lastTotals) >= plainTotalsEvery {
			d.lastTotals = time.Now()
			fmt.Fprintf(d.out, "%7s  %s\n", time.Since(d.start).Truncate(time.Second), *d.totals.Load())
		}
		return
	}
	if j.bar == nil {
		j.bar = d.addBar(j, rec)
	}
	// The bar's total is what SharePoint reported, and one more than the count while the job is
	// not finished, so the bar never fills (and mpb never completes it) before the job is done.
	total := max(v.total, v.processed+1)
	if Terminal(v.state) {
		j.bar.SetCurrent(v.processed)
		j.bar.SetTotal(-1, true)
		return
	}
	j.bar.SetTotal(total, false)
	j.bar.SetCurrent(v.processed)
}

func (d *Display) addBar(j *job, rec *amrpipev1.JobRecord) *mpb.Bar {
	label := Label(rec)
	// Built with a total of 0: mpb ignores SetTotal on a bar built with a positive total and
	// completes it as soon as its count reaches that total.
	return d.bars.New(0, mpb.BarStyle(), mpb.BarWidth(24),
		mpb.PrependDecorators(
			decor.Any(func(decor.Statistics) string {
				v := j.view.Load()
				return fmt.Sprintf("%s  %-9s %19s", label, jobstore.StateName(v.state), v.counts())
			}),
		),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				v := j.view.Load()
				return fmt.Sprintf(" %5s  %s", v.percent(), v.speedAndETA())
			}),
		),
	)
}

// counts is "processed/total", with "?" for a total SharePoint has not reported.
func (v *view) counts() string {
	if v.total <= 0 {
		return thousands(v.processed) + "/?"
	}
	return thousands(v.processed) + "/" + thousands(max(v.total, v.processed))
}

// percent is the share of the reported total processed; 100 % only once the job is done.
func (v *view) percent() string {
	switch {
	case v.state == amrpipev1.JobState_JOB_STATE_DONE:
		return "100%"
	case v.total <= 0:
		return "-"
	}
	return fmt.Sprintf("%d%%", min(99, v.processed*100/v.total))
}

// speedAndETA is "1,234 obj/s  ETA 01:05" for a running job, empty otherwise.
func (v *view) speedAndETA() string {
	if v.speed <= 0 {
		return ""
	}
	s := thousands(int64(math.Round(v.speed))) + " obj/s"
	if left := v.total - v.processed; v.total > 0 && left > 0 {
		s += "  ETA " + clock(time.Duration(float64(left)/v.speed*float64(time.Second)))
	}
	return s
}

// totalsLine sums every job: jobs by state, objects, records, speed and the ETA of the
// running jobs.
func (d *Display) totalsLine() string {
	s := d.summary()
	var states []string
	for _, st := range []string{"submitted", "queued", "running", "ended", "done", "failed"} {
		if n := s.ByState[st]; n > 0 {
			states = append(states, fmt.Sprintf("%d %s", n, st))
		}
	}
	line := fmt.Sprintf("total       %d jobs (%s)  objects %s/%s  records %s", s.Jobs, strings.Join(states, ", "),
		thousands(s.Objects), thousands(s.Expected), thousands(s.Records))
	if s.Speed > 0 {
		line += "  " + thousands(int64(math.Round(s.Speed))) + " obj/s"
		if left := s.Expected - s.Objects; left > 0 {
			line += "  ETA " + clock(time.Duration(float64(left)/s.Speed*float64(time.Second)))
		}
	}
	return line + "  elapsed " + clock(time.Since(d.start))
}

// Summary counts jobs per state and the records they produced.
type Summary struct {
	Jobs    int
	ByState map[string]int
	// Objects processed and Expected (SharePoint's totals so far, never below what was
	// processed) over every job.
	Objects, Expected int64
	Records           int64
	// Speed sums the running jobs' objects/s.
	Speed float64
}

// Summary returns the totals over every job seen.
func (d *Display) Summary() Summary {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.summary()
}

func (d *Display) summary() Summary {
	s := Summary{ByState: map[string]int{}}
	for _, id := range d.order {
		j := d.jobs[id]
		v := j.view.Load()
		s.Jobs++
		s.ByState[jobstore.StateName(v.state)]++
		s.Objects += v.processed
		s.Expected += max(v.total, v.processed)
		s.Records += j.rec.GetRecords()
		s.Speed += v.speed
	}
	return s
}

// AllDone reports whether every job seen has finished (and at least one was seen).
func (d *Display) AllDone() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.order) == 0 {
		return false
	}
	for _, id := range d.order {
		if !Terminal(d.jobs[id].rec.GetState()) {
			return false
		}
	}
	return true
}

// States lists the jobs not finished, by state ("3 running, 1 queued"), for a message on why a
// run was cut short; empty when every job finished.
func (d *Display) States() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := map[string]int{}
	for _, id := range d.order {
		if st := d.jobs[id].rec.GetState(); !Terminal(st) {
			n[jobstore.StateName(st)]++
		}
	}
	var parts []string
	for k, v := range n {
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// Close stops drawing and leaves the totals line last; bars of unfinished jobs are left as they
// are.
func (d *Display) Close() {
	d.mu.Lock()
	line := d.totalsLine()
	d.totals.Store(&line)
	if d.bars == nil {
		fmt.Fprintf(d.out, "%7s  %s\n", time.Since(d.start).Truncate(time.Second), line)
		d.mu.Unlock()
		return
	}
	for _, id := range d.order {
		if j := d.jobs[id]; j.bar != nil && !Terminal(j.rec.GetState()) {
			j.bar.Abort(false)
		}
	}
	d.totalsBar.SetTotal(-1, true)
	d.mu.Unlock()
	d.bars.Wait()
}

func ptr[T any](v T) *T { return &v }
