package runreport

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/pkg/report"
)

// FileHTML is the HTML run report WriteHTML writes beside the CSV files.
const FileHTML = "report.html"

// HTMLRows caps the rows of the HTML report's jobs and failures tables; the CSV files list them
// all, and the table's note says how many more are there.
const HTMLRows = 1000

// slowestJobs is how many jobs the duration chart shows: the longest ones are where an export's
// time went.
const slowestJobs = 20

// Sections are the run report's sections of an HTML report: an overview of the totals, the records
// per object type, the jobs by state with the slowest jobs' time queued and exporting, the jobs
// table, and the failures (SharePoint's issues per object first). The tables hold at most
// HTMLRows rows, with a note naming the CSV file that has the rest.
func (r *Report) Sections() []report.Section {
	return []report.Section{r.overview(), r.objectTypes(), r.jobStates(), r.jobDurations(), r.jobsTable(), r.failures()}
}

func (r *Report) overview() report.Section {
	s := r.Summary
	incomplete := s.Failed || !s.Complete
	note := fmt.Sprintf("Plan %s: %s. Started %s, ended %s; report built %s.", r.PlanID, s.Status(), orDash(when(s.Started)),
		orDash(when(s.Ended)), when(r.Built))
	if len(r.EventsMissing) > 0 {
		note += fmt.Sprintf(" The events of %d jobs were no longer stored (older than 5 days): their SharePoint issues and statistics are not in this report.",
			len(r.EventsMissing))
	}
	return report.Section{Title: "Overview", Note: note, Stats: []report.Stat{
		{Label: "status", Value: s.Status(), Bad: incomplete},
		{Label: "jobs", Value: itoa(s.Jobs)},
		{Label: "jobs failed", Value: itoa(s.JobsByState[stateFailed]), Bad: s.JobsByState[stateFailed] > 0},
		{Label: "specs dead-lettered", Value: itoa(s.SpecsDeadLettered), Bad: s.SpecsDeadLettered > 0},
		{Label: "records", Value: i64(s.Records)},
		{Label: "objects (SharePoint's count)", Value: i64(s.Objects)},
		{Label: "bytes", Value: i64(s.Bytes)},
		{Label: "earlier versions", Value: i64(s.Versions)},
		{Label: "duration", Value: s.Duration.Round(time.Second).String()},
		{Label: "records/s", Value: strconv.FormatFloat(s.RecordsPerSecond, 'f', 0, 64)},
		{Label: "SQL throttling wait", Value: s.SQLThrottlingWait.Round(time.Millisecond).String()},
		{Label: "postponements", Value: itoa(s.Postponed)},
		{Label: "SharePoint errors", Value: itoa(s.Errors), Bad: s.Errors > 0},
		{Label: "SharePoint warnings", Value: itoa(s.Warnings), Bad: s.Warnings > 0},
		{Label: "SharePoint fatal errors", Value: itoa(s.FatalErrors), Bad: s.FatalErrors > 0},
	}}
}

func (r *Report) objectTypes() report.Section {
	sec := report.Section{Title: "Objects per type"}
	if len(r.ObjectTypes) == 0 {
		sec.Note = "No record was published."
		return sec
	}
	types := slices.Clone(r.ObjectTypes)
	sort.SliceStable(types, func(i, k int) bool { return types[i].Records > types[k].Records })
	sec.Chart = &report.BarChart{Title: "Records published per object type", Series: []string{"records"}, Colors: []string{report.Pass}}
	for _, t := range types {
		sec.Chart.Bars = append(sec.Chart.Bars, report.Bar{Label: t.Type, Values: []float64{float64(t.Records)}})
	}
	return sec
}

// jobStateOrder lists the states a spec can be in, ended ones first.
var jobStateOrder = []string{stateDone, stateFailed, stateDeadLettered, stateReplanned, statePending}

func (r *Report) jobStates() report.Section {
	counts := map[string]int{}
	for _, j := range r.Jobs {
		counts[j.State]++
	}
	states := slices.Clone(jobStateOrder)
	var others []string
	for st := range counts {
		if !slices.Contains(states, st) {
			others = append(others, st)
		}
	}
	sort.Strings(others)
	sec := report.Section{Title: "Jobs by state", Note: "Every spec of the plan by the state of its job; a spec without a job is pending, dead-lettered or re-planned."}
	var present []string
	for _, st := range append(states, others...) {
		if counts[st] > 0 {
			present = append(present, st)
		}
	}
	if len(present) == 0 {
		sec.Note = "The plan has no spec yet."
		return sec
	}
	// One series per state, so that each bar has its state's colour and the legend names it.
	sec.Chart = &report.BarChart{Title: "Specs per state", Series: present}
	for i, st := range present {
		color := "#1565c0"
		switch st {
		case stateDone:
			color = report.Pass
		case stateFailed, stateDeadLettered:
			color = report.Fail
		}
		sec.Chart.Colors = append(sec.Chart.Colors, color)
		values := make([]float64, len(present))
		values[i] = float64(counts[st])
		sec.Chart.Bars = append(sec.Chart.Bars, report.Bar{Label: st, Values: values})
	}
	return sec
}

func (r *Report) jobDurations() report.Section {
	type timed struct {
		label           string
		queued, running time.Duration
	}
	var jobs []timed
	for _, j := range r.Jobs {
		if j.Submitted.IsZero() || j.Started.IsZero() {
			continue
		}
		end := j.Ended
		if end.IsZero() {
			end = r.Built // still running: up to now
		}
		jobs = append(jobs, timed{label: jobLabel(j), queued: j.Started.Sub(j.Submitted), running: end.Sub(j.Started)})
	}
	sec := report.Section{Title: "Slowest jobs"}
	if len(jobs) == 0 {
		sec.Note = "No job has started yet."
		return sec
	}
	sort.SliceStable(jobs, func(i, k int) bool { return jobs[i].queued+jobs[i].running > jobs[k].queued+jobs[k].running })
	sec.Note = fmt.Sprintf("The longest %d of the %d jobs that started, in seconds: queued is SharePoint's queue (submission to start), exporting is start to end (to now for a running job). JobReport.csv has every job's times.",
		min(slowestJobs, len(jobs)), len(jobs))
	sec.Chart = &report.BarChart{Title: "Seconds queued and exporting per job", Series: []string{"queued", "exporting"}, Colors: []string{"#ef6c00", "#1565c0"}}
	for _, j := range jobs[:min(slowestJobs, len(jobs))] {
		sec.Chart.Bars = append(sec.Chart.Bars, report.Bar{Label: j.label, Values: []float64{j.queued.Seconds(), j.running.Seconds()}})
	}
	return sec
}

// jobLabel names a job in a chart: its kind and first target (the chart shows a label's end, so
// the count of further targets stays visible).
func jobLabel(j Job) string {
	label := j.Kind
	if len(j.Targets) > 0 {
		label += " " + j.Targets[0]
	}
	if len(j.Targets) > 1 {
		label += fmt.Sprintf(" +%d", len(j.Targets)-1)
	}
	return label
}

func (r *Report) jobsTable() report.Section {
	t := &report.Table{Columns: []string{"Spec ID", "Job ID", "State", "Kind", "Targets", "Started", "Ended", "Records", "Bytes",
		"Errors", "Warnings", "Error"}}
	for i, j := range r.Jobs {
		if i == HTMLRows {
			t.Note = fmt.Sprintf("Showing the first %d of %d specs; %s lists them all.", HTMLRows, len(r.Jobs), FileJobs)
			break
		}
		t.Rows = append(t.Rows, []string{j.SpecID, j.JobID, j.State, j.Kind, strings.Join(j.Targets, " "), when(j.Started), when(j.Ended),
			i64(j.Records), i64(j.Bytes), itoa(j.Errors), itoa(j.Warnings), j.Error})
	}
	sec := report.Section{Title: "Jobs", Table: t}
	if len(r.Jobs) == 0 {
		sec.Table, sec.Note = nil, "The plan has no spec yet."
	}
	return sec
}

func (r *Report) failures() report.Section {
	byCat := map[string]int{}
	for _, f := range r.Failures {
		byCat[f.Category]++
	}
	sec := report.Section{Title: "Failures"}
	for _, c := range []string{CategoryJobError, CategoryJobWarning, CategoryJobFatalError, CategoryJobFailed, CategorySpecDeadLettered, CategoryPlanningDeadLettered} {
		sec.Stats = append(sec.Stats, report.Stat{Label: c, Value: itoa(byCat[c]), Bad: byCat[c] > 0})
	}
	if len(r.Failures) == 0 {
		sec.Note = "No failure: SharePoint reported no error or warning on any object, and every job and spec that ended did so without failing."
		return sec
	}
	sec.Note = "SharePoint's own JobError, JobWarning and JobFatalError events per object, then the jobs that failed and the specs and plannings dead-lettered."
	rows := r.failureRows()
	t := &report.Table{Columns: []string{"Result category", "Source", "Item type", "Item ID", "Error code", "Message", "Time", "Job ID"}}
	for i, row := range rows {
		if i == HTMLRows {
			t.Note = fmt.Sprintf("Showing the first %d of %d failures; %s lists them all.", HTMLRows, len(rows), FileFailures)
			break
		}
		t.Rows = append(t.Rows, []string{row[0], row[1], row[2], row[3], row[4], row[6], row[7], row[8]})
	}
	sec.Table = t
	return sec
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Page is the report as one HTML page (what WriteHTML writes), for a caller serving it itself.
func (r *Report) Page() *report.HTML {
	return &report.HTML{Title: "Run report of plan " + r.PlanID, Subtitle: fmt.Sprintf("%s; built %s", r.Summary.Status(), when(r.Built)),
		Sections: r.Sections()}
}

// WriteHTML writes FileHTML into dir (created if missing) and returns its path. Like the CSV files
// it is written whole or not at all.
func (r *Report) WriteHTML(dir string) (string, error) {
	if err := mkdir(dir); err != nil {
		return "", err
	}
	page := r.Page()
	path := filepath.Join(dir, FileHTML)
	if err := report.WriteFile(path, page.Write); err != nil {
		return "", err
	}
	return path, nil
}
