package runreport

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/pkg/report"
)

// The CSV files WriteCSV writes. Their names and columns follow SharePoint Migration Tool's
// reports where there is a counterpart (SummaryReport.csv: one row, the whole picture;
// FailureSummary.csv: one row per failure); JobReport.csv and ObjectTypeReport.csv are amrpipe's.
const (
	FileSummary     = "SummaryReport.csv"
	FileJobs        = "JobReport.csv"
	FileObjectTypes = "ObjectTypeReport.csv"
	FileFailures    = "FailureSummary.csv"
)

// Columns of each file, in order.
var (
	SummaryColumns = []string{"Plan ID", "Status", "Jobs", "Jobs done", "Jobs failed", "Jobs running",
		"Specs pending", "Specs dead-lettered", "Specs re-planned", "Objects (SharePoint)", "Records", "Bytes", "Versions",
		"Started", "Ended", "Duration (s)", "Records/s", "SQL throttling wait (s)", "Postponed",
		"Errors", "Warnings", "Fatal errors", "Report built"}
	JobColumns = []string{"Spec ID", "Job ID", "State", "Kind", "Targets", "Submitted", "Started", "Ended",
		"Objects (SharePoint)", "Records", "Bytes", "Versions", "Errors", "Warnings", "Fatal errors", "Postponed",
		"SQL throttling wait (s)", "Error", "Note", "Re-planned as"}
	ObjectTypeColumns = []string{"Object type", "Records"}
	FailureColumns    = []string{"Result category", "Source", "Item type", "Item ID", "Error code", "Error type",
		"Message", "Time", "Job ID", "Spec ID"}
)

// Status is the plan's state in words (PlanState).
func (s Summary) Status() string { return PlanState(s.Complete, s.Failed) }

// PlanState is a plan's state in words, the same in every report, table and page: "complete",
// "ended incomplete" (ended with a failed job or a dead-lettered spec), "running" or "running,
// incomplete" (running, with a failure already).
func PlanState(complete, failed bool) string {
	switch {
	case complete && failed:
		return "ended incomplete"
	case complete:
		return "complete"
	case failed:
		return "running, incomplete"
	}
	return "running"
}

// WriteCSV writes the report's four CSV files into dir (created if missing) and returns their
// paths. Each file is written whole or not at all (written aside, then renamed), so a reader
// never takes a cut file for the report.
func (r *Report) WriteCSV(dir string) ([]string, error) {
	if err := mkdir(dir); err != nil {
		return nil, err
	}
	s := r.Summary
	files := []struct {
		name string
		head []string
		rows [][]string
	}{
		{FileSummary, SummaryColumns, [][]string{{r.PlanID, s.Status(), itoa(s.Jobs), itoa(s.JobsByState[stateDone]),
			itoa(s.JobsByState[stateFailed]), itoa(s.Jobs - s.JobsByState[stateDone] - s.JobsByState[stateFailed]),
			itoa(s.SpecsPending), itoa(s.SpecsDeadLettered), itoa(s.Replanned), i64(s.Objects), i64(s.Records), i64(s.Bytes),
			i64(s.Versions), when(s.Started), when(s.Ended), secs(s.Duration), strconv.FormatFloat(s.RecordsPerSecond, 'f', 1, 64),
			secs(s.SQLThrottlingWait), itoa(s.Postponed), itoa(s.Errors), itoa(s.Warnings), itoa(s.FatalErrors), when(r.Built)}}},
		{FileJobs, JobColumns, r.jobRows()},
		{FileObjectTypes, ObjectTypeColumns, r.typeRows()},
		{FileFailures, FailureColumns, r.failureRows()},
	}
	var paths []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := writeFile(path, f.head, f.rows); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

func (r *Report) jobRows() [][]string {
	var rows [][]string
	for _, j := range r.Jobs {
		rows = append(rows, []string{j.SpecID, j.JobID, j.State, j.Kind, strings.Join(j.Targets, " "), when(j.Submitted),
			when(j.Started), when(j.Ended), i64(j.Objects), i64(j.Records), i64(j.Bytes), i64(j.Versions), itoa(j.Errors),
			itoa(j.Warnings), itoa(j.FatalErrors), itoa(j.Postponed), secs(j.SQLThrottlingWait), j.Error, j.Note, j.ReplanID})
	}
	return rows
}

func (r *Report) typeRows() [][]string {
	types := append([]ObjectType(nil), r.ObjectTypes...)
	sort.Slice(types, func(i, k int) bool { return types[i].Type < types[k].Type })
	var rows [][]string
	for _, t := range types {
		rows = append(rows, []string{t.Type, i64(t.Records)})
	}
	return rows
}

func (r *Report) failureRows() [][]string {
	var rows [][]string
	for _, f := range r.Failures {
		code := ""
		if f.ErrorCode != 0 {
			code = i64(f.ErrorCode)
		}
		rows = append(rows, []string{f.Category, f.URL, f.ObjectType, f.ObjectID, code, f.ErrorType, f.Message,
			when(f.Time), f.JobID, f.SpecID})
	}
	return rows
}

func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	return nil
}

// writeFile writes one CSV file, whole or not at all.
func writeFile(path string, head []string, rows [][]string) error {
	return report.WriteFile(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(head); err != nil {
			return err
		}
		return cw.WriteAll(rows) // WriteAll flushes
	})
}

func itoa(n int) string  { return strconv.Itoa(n) }
func i64(n int64) string { return strconv.FormatInt(n, 10) }
func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// when is a time in RFC 3339 (UTC, milliseconds), or empty when not reached.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
