package runreport

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestWriteCSVWritesEveryFileWithItsColumns: the four files, their headers, and one failure row
// per category with SharePoint's fields where it has them and the pipeline's reason otherwise.
func TestWriteCSVWritesEveryFileWithItsColumns(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	r := &Report{PlanID: "p1", Built: at.Add(time.Hour),
		Summary: Summary{Complete: true, Failed: true, JobsByState: map[string]int{stateDone: 1, stateFailed: 1}, Jobs: 2,
			SpecsDeadLettered: 1, Records: 10, Bytes: 1 << 40, Started: at, Ended: at.Add(10 * time.Second), Duration: 10 * time.Second,
			RecordsPerSecond: 1, SQLThrottlingWait: 1500 * time.Millisecond, Errors: 1, Warnings: 1},
		Jobs:        []Job{{SpecID: "s1", JobID: "j1", State: stateDone, Targets: []string{"https://x/a", "https://x/b"}}},
		ObjectTypes: []ObjectType{{"SPFile", 7}, {"SPFolder", 3}},
		Failures: []Failure{
			{Category: CategoryJobError, JobID: "j1", URL: "Shared Documents/a, \"b\".docx", ObjectType: "File", ObjectID: "f1", ErrorCode: -2147024816, Message: "exists", Time: at},
			{Category: CategoryJobFailed, JobID: "j2", Message: "file Manifest2.xml failed"},
			{Category: CategorySpecDeadLettered, SpecID: "s3", Message: "SharePoint refused the create call"},
		}}
	dir := filepath.Join(t.TempDir(), "reports")
	paths, err := r.WriteCSV(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{FileSummary: SummaryColumns, FileJobs: JobColumns, FileObjectTypes: ObjectTypeColumns, FileFailures: FailureColumns}
	if len(paths) != len(want) {
		t.Fatalf("wrote %v", paths)
	}
	rows := map[string][][]string{}
	for name, cols := range want {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(recs[0], cols) {
			t.Errorf("%s header %v, want %v", name, recs[0], cols)
		}
		rows[name] = recs[1:]
	}
	sum := rows[FileSummary][0]
	for col, v := range map[string]string{"Status": "ended incomplete", "Jobs done": "1", "Jobs failed": "1", "Jobs running": "0",
		"Bytes": "1099511627776", "Started": "2026-05-01T10:00:00.000Z", "Duration (s)": "10.000", "SQL throttling wait (s)": "1.500"} {
		if got := sum[slices.Index(SummaryColumns, col)]; got != v {
			t.Errorf("summary %s = %q, want %q", col, got, v)
		}
	}
	fails := rows[FileFailures]
	if len(fails) != 3 || fails[0][1] != "Shared Documents/a, \"b\".docx" || fails[0][4] != "-2147024816" ||
		fails[1][0] != CategoryJobFailed || fails[1][4] != "" || fails[2][9] != "s3" {
		t.Errorf("failure rows %q", fails)
	}
	if len(rows[FileObjectTypes]) != 2 || rows[FileJobs][0][4] != "https://x/a https://x/b" {
		t.Errorf("object types %q, jobs %q", rows[FileObjectTypes], rows[FileJobs])
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("%d entries in the report directory, want the 4 files and nothing aside", len(entries))
	}
}
