package devstack_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/runreport"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// TestRunReportShowsSharePointIssuesAndTheTruth: a plan runs through the whole pipeline while
// SharePoint (the simulator) reports a JobError for every file under Team-0003 and a JobWarning
// for every file under Drafts. `amrctl report` writes FailureSummary.csv with each of them (URL,
// error code, message) and nothing else, and SummaryReport.csv and ObjectTypeReport.csv with the
// tenant's ground truth: records per object type, bytes and versions.
func TestRunReportShowsSharePointIssuesAndTheTruth(t *testing.T) {
	const errCode, warnCode = -2147024816, -2147286782
	s := start(t, func(o *devstack.Options) {
		o.Faults = []server.Rule{
			{Job: "object-error", Match: "Team-0003/", Code: errCode},
			{Job: "object-warning", Match: "Drafts/", Code: warnCode, Message: "Attempted to use an object that has ceased to exist."},
		}
	})
	p := plan(s, "report-plan", false)
	runPlan(t, s, p, nil)

	// The ground truth: what the plan must yield, and which objects the faults hit.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := map[issue]bool{}
	types := map[string]int64{}
	var bytesWant, versionsWant int64
	_, err := testenv.Truth(ctx, s.Tenant, p.GetTargets(), testenv.TenantOptions(p.GetOptions()), func(o *tenant.Object) {
		types[string(o.Type)]++
		bytesWant += o.Size
		versionsWant += int64(len(o.Versions))
		itemType := map[tenant.ObjectType]string{tenant.TypeFile: "File", tenant.TypeListItem: "ListItem"}[o.Type]
		if itemType == "" || o.Type == tenant.TypeListItem && o.DocType != "" {
			return
		}
		if strings.Contains(o.WebRelURL, "Team-0003/") {
			want[issue{"JobError", o.WebRelURL, itemType, o.ID, strconv.Itoa(errCode), "JobError on " + o.WebRelURL + " (injected by spsim)"}] = true
		}
		if strings.Contains(o.WebRelURL, "Drafts/") {
			want[issue{"JobWarning", o.WebRelURL, itemType, o.ID, strconv.Itoa(warnCode), "Attempted to use an object that has ceased to exist."}] = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var errs, warns int
	for is := range want {
		if is.category == "JobError" {
			errs++
		} else {
			warns++
		}
	}
	if errs == 0 || warns == 0 {
		t.Fatalf("the faults hit %d objects with errors and %d with warnings; the test needs both", errs, warns)
	}

	dir := t.TempDir()
	var out bytes.Buffer
	root := cli.Root()
	root.SetOut(&out)
	root.SetArgs([]string{"--nats-url", s.NATSURL(), "report", "--plan", p.GetPlanId(), "--out", dir})
	if err := root.Execute(); err != nil {
		t.Fatalf("amrctl report: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	if html := filepath.Join(dir, runreport.FileHTML); !strings.Contains(out.String(), "wrote "+html) {
		t.Errorf("amrctl report does not say it wrote %s:\n%s", html, out.String())
	} else if page, err := os.ReadFile(html); err != nil || !strings.Contains(string(page), "JobError on ") {
		t.Errorf("%s: %v, or it does not list SharePoint's JobErrors", html, err)
	}

	got := map[issue]int{}
	for _, row := range readCSV(t, filepath.Join(dir, runreport.FileFailures), runreport.FailureColumns) {
		got[issue{row["Result category"], row["Source"], row["Item type"], row["Item ID"], row["Error code"], row["Message"]}]++
		if row["Job ID"] == "" || row["Time"] == "" {
			t.Errorf("failure row without its job or time: %v", row)
		}
	}
	for is := range want {
		if got[is] == 0 {
			t.Errorf("FailureSummary.csv lacks %+v", is)
		}
	}
	for is, n := range got {
		if !want[is] {
			t.Errorf("FailureSummary.csv has %d unexpected rows %+v", n, is)
		}
	}

	sum := readCSV(t, filepath.Join(dir, runreport.FileSummary), runreport.SummaryColumns)
	if len(sum) != 1 {
		t.Fatalf("SummaryReport.csv has %d rows, want 1", len(sum))
	}
	jobs, err := s.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for col, wantV := range map[string]string{
		"Status": "complete", "Jobs": strconv.Itoa(len(jobs)), "Jobs done": strconv.Itoa(len(jobs)), "Jobs failed": "0",
		"Bytes": strconv.FormatInt(bytesWant, 10), "Versions": strconv.FormatInt(versionsWant, 10),
		"Errors": strconv.Itoa(rowsOf(got, "JobError")), "Warnings": strconv.Itoa(rowsOf(got, "JobWarning")),
	} {
		if v := sum[0][col]; v != wantV {
			t.Errorf("SummaryReport.csv %s = %q, want %q", col, v, wantV)
		}
	}
	byType := map[string]string{}
	for _, row := range readCSV(t, filepath.Join(dir, runreport.FileObjectTypes), runreport.ObjectTypeColumns) {
		byType[row["Object type"]] = row["Records"]
	}
	for typ, n := range types {
		if byType[typ] != strconv.FormatInt(n, 10) {
			t.Errorf("ObjectTypeReport.csv: %s has %q records, want %d (the tenant's)", typ, byType[typ], n)
		}
	}

	// The same report as Go values, through the client library.
	c, err := client.Connect(ctx, s.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := runreport.Build(ctx, c, p.GetPlanId())
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.Errors != rowsOf(got, "JobError") || r.Summary.Warnings != rowsOf(got, "JobWarning") || r.Summary.RecordsPerSecond <= 0 {
		t.Errorf("Build: summary %+v", r.Summary)
	}
}

// issue is one row of FailureSummary.csv, as compared.
type issue struct{ category, url, itemType, id, code, message string }

// rowsOf counts the rows of one category.
func rowsOf(m map[issue]int, category string) int {
	n := 0
	for k, c := range m {
		if k.category == category {
			n += c
		}
	}
	return n
}

// readCSV reads a report file whose header must be columns, as one map per row.
func readCSV(t *testing.T, path string, columns []string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != strings.Join(columns, ",") {
		t.Fatalf("%s: header %v, want %v", path, recs, columns)
	}
	var out []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, c := range columns {
			row[c] = rec[i]
		}
		out = append(out, row)
	}
	return out
}
