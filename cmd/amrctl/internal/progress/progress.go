// Package progress shows AMR jobs as they move: one live bar per job (state, items, %, items/s,
// ETA) and a totals line, fed from the watchable job records. On a terminal it draws bars with mpb
// (chosen over single-bar libraries because it renders many concurrent bars); elsewhere it prints a
// line per state change, so logs of non-interactive runs stay readable.
package progress

import (
	"fmt"
	"io"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Display renders job progress.
type Display struct {
	mu    sync.Mutex
	out   io.Writer
	bars  *mpb.Progress // nil when not drawing bars
	jobs  map[string]*job
	order []string
	start time.Time
}

type job struct {
	bar      *mpb.Bar
	rec      *amrpipev1.JobRecord
	lastSeen time.Time
	state    amrpipev1.JobState
	// shown is the state the bar's decorator draws: atomic, because mpb renders from its own
	// goroutine while Update holds the display's lock.
	shown atomic.Int32
}

// New returns a display writing to out; bars draws live bars (use it on terminals).
func New(out io.Writer, bars bool) *Display {
	d := &Display{out: out, jobs: map[string]*job{}, start: time.Now()}
	if bars {
		d.bars = mpb.New(mpb.WithOutput(out), mpb.WithWidth(32), mpb.WithRefreshRate(150*time.Millisecond))
	}
	return d
}

// Label names a job for a human: its kind and its first URL.
func Label(rec *amrpipev1.JobRecord) string {
	s := rec.GetSpec()
	kind := "job"
	switch {
	case s.GetProbe():
		kind = "probe"
	case s.GetEmit() == amrpipev1.Emit_EMIT_SECURITY_ONLY:
		kind = "security"
	case s.GetStartChangeToken() != "":
		kind = "incremental"
	case s.GetMulti():
		kind = fmt.Sprintf("multi×%d", len(s.GetUrls()))
	}
	target := ""
	if urls := s.GetUrls(); len(urls) > 0 {
		target = path.Base(urls[0])
	}
	return fmt.Sprintf("%-10s %-22.22s", kind, target)
}

// StateName is a job state for people.
func StateName(s amrpipev1.JobState) string {
	switch s {
	case amrpipev1.JobState_JOB_STATE_SUBMITTED:
		return "submitted"
	case amrpipev1.JobState_JOB_STATE_QUEUED:
		return "queued"
	case amrpipev1.JobState_JOB_STATE_RUNNING:
		return "running"
	case amrpipev1.JobState_JOB_STATE_ENDED:
		return "parsing"
	case amrpipev1.JobState_JOB_STATE_DONE:
		return "done"
	case amrpipev1.JobState_JOB_STATE_FAILED:
		return "failed"
	}
	return "-"
}

// Terminal reports whether a job is finished for good.
func Terminal(s amrpipev1.JobState) bool {
	return s == amrpipev1.JobState_JOB_STATE_DONE || s == amrpipev1.JobState_JOB_STATE_FAILED
}

// Update shows a job record's new state.
func (d *Display) Update(rec *amrpipev1.JobRecord) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := rec.GetJobId()
	j := d.jobs[id]
	if j == nil {
		j = &job{lastSeen: time.Now(), state: -1}
		d.jobs[id] = j
		d.order = append(d.order, id)
		if d.bars != nil {
			j.bar = d.addBar(j, rec)
		}
	}
	prev := j.rec
	if prev != nil && rec.GetUpdated().AsTime().Before(prev.GetUpdated().AsTime()) {
		return // a stale value (a watch lagging behind a snapshot)
	}
	j.rec = rec
	if d.bars == nil {
		if rec.GetState() != j.state {
			fmt.Fprintf(d.out, "%s  %s %-9s %8d/%-8d records %d\n", time.Since(d.start).Truncate(time.Second), Label(rec), StateName(rec.GetState()),
				rec.GetObjectsProcessed(), rec.GetExpectedObjects(), rec.GetRecords())
		}
		j.state = rec.GetState()
		return
	}
	j.state = rec.GetState()
	j.shown.Store(int32(rec.GetState()))
	if total := rec.GetExpectedObjects(); total > 0 && (prev == nil || prev.GetExpectedObjects() != total) {
		j.bar.SetTotal(total, false)
	}
	now := time.Now()
	j.bar.EwmaSetCurrent(rec.GetObjectsProcessed(), now.Sub(j.lastSeen))
	j.lastSeen = now
	if Terminal(rec.GetState()) {
		j.bar.SetTotal(-1, true)
	}
}

func (d *Display) addBar(j *job, rec *amrpipev1.JobRecord) *mpb.Bar {
	total := max(rec.GetExpectedObjects(), 1)
	return d.bars.AddBar(total,
		mpb.PrependDecorators(
			decor.Name(Label(rec), decor.WCSyncSpaceR),
			decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("%-9s", StateName(amrpipev1.JobState(j.shown.Load())))
			}),
			decor.CountersNoUnit(" %d/%d", decor.WCSyncWidth),
		),
		mpb.AppendDecorators(
			decor.Percentage(decor.WC{W: 5}),
			decor.EwmaSpeed(nil, " %.0f items/s", 30, decor.WCSyncWidth),
			decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_MMSS, 30, decor.WCSyncWidth), " done"),
		),
	)
}

// Summary counts jobs per state and the records they produced.
type Summary struct {
	Jobs    int
	ByState map[string]int
	Objects int64
	Records int64
}

// Summary returns the totals over every job seen.
func (d *Display) Summary() Summary {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Summary{ByState: map[string]int{}}
	for _, id := range d.order {
		rec := d.jobs[id].rec
		s.Jobs++
		s.ByState[StateName(rec.GetState())]++
		s.Objects += rec.GetObjectsProcessed()
		s.Records += rec.GetRecords()
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

// Close stops drawing; bars of unfinished jobs are left as they are.
func (d *Display) Close() {
	if d.bars == nil {
		return
	}
	d.mu.Lock()
	for _, id := range d.order {
		if j := d.jobs[id]; !Terminal(j.rec.GetState()) {
			j.bar.Abort(false)
		}
	}
	d.mu.Unlock()
	d.bars.Wait()
}
