package runreport

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// page is what a reader of report.html sees: its texts, its links and whether it has a script.
type page struct {
	texts    string
	links    []string
	scripts  int
	sections int
	rows     map[string]int // table rows per section title
}

// readPage parses report.html strictly as XML (it is well-formed) and collects what it shows.
func readPage(t *testing.T, path string) page {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := page{rows: map[string]int{}}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var texts []string
	var inH2 bool
	section := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed: %v", path, err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			for _, a := range tk.Attr {
				if a.Name.Local == "src" || a.Name.Local == "href" {
					p.links = append(p.links, a.Value)
				}
			}
			switch tk.Name.Local {
			case "script", "link", "img", "iframe", "object":
				p.scripts++
			case "section":
				p.sections++
			case "h2":
				inH2 = true
			case "tr":
				p.rows[section]++
			}
		case xml.EndElement:
			if tk.Name.Local == "h2" {
				inH2 = false
			}
		case xml.CharData:
			s := strings.TrimSpace(string(tk))
			if inH2 {
				section = s
			}
			texts = append(texts, s)
		}
	}
	p.texts = strings.Join(texts, "\n")
	return p
}

// TestHTMLReportShowsTheRunAndCapsItsTables: report.html of a plan that ended incomplete is
// self-contained (no script, no link leaving the page), says the plan is incomplete and that some
// jobs' events were gone, charts the object types, the jobs by state and the slowest jobs, and
// lists SharePoint's issues per object in a table capped at HTMLRows rows with a note pointing to
// FailureSummary.csv.
func TestHTMLReportShowsTheRunAndCapsItsTables(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	r := &Report{PlanID: "p1", Built: at.Add(time.Hour), EventsMissing: []string{"j9"},
		Summary: Summary{Complete: true, Failed: true, JobsByState: map[string]int{stateDone: 1, stateFailed: 1}, Jobs: 2,
			SpecsDeadLettered: 1, Records: 12345, Started: at, Ended: at.Add(100 * time.Second), Duration: 100 * time.Second,
			RecordsPerSecond: 123.45, Errors: HTMLRows + 5},
		Jobs: []Job{
			{SpecID: "s1", JobID: "j1", State: stateDone, Kind: "single", Targets: []string{"https://x/sites/hr/Docs"},
				Submitted: at, Started: at.Add(10 * time.Second), Ended: at.Add(100 * time.Second), Records: 12000},
			{SpecID: "s2", JobID: "j2", State: stateFailed, Kind: "multi-url", Targets: []string{"https://x/sites/fin", "https://x/sites/legal"},
				Submitted: at, Started: at.Add(time.Second), Ended: at.Add(5 * time.Second), Error: "file Manifest2.xml failed"},
			{SpecID: "s3", State: stateDeadLettered, Error: "SharePoint refused the create call"},
		},
		ObjectTypes: []ObjectType{{"SPFile", 7000}, {"SPListItem", 5000}, {"SPFolder", 345}},
	}
	for i := range HTMLRows + 5 {
		r.Failures = append(r.Failures, Failure{Category: CategoryJobError, JobID: "j1", SpecID: "s1", Time: at,
			URL: fmt.Sprintf("Shared Documents/<b>%d</b> & co.docx", i), ObjectType: "File", ObjectID: "f" + strconv.Itoa(i),
			ErrorCode: -2147024816, Message: "exists"})
	}
	r.Failures = append(r.Failures, Failure{Category: CategoryJobFailed, JobID: "j2", Message: "file Manifest2.xml failed"},
		Failure{Category: CategorySpecDeadLettered, SpecID: "s3", Message: "SharePoint refused the create call"})

	dir := filepath.Join(t.TempDir(), "reports")
	path, err := r.WriteHTML(dir)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, FileHTML) {
		t.Errorf("wrote %s", path)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in the report directory, want report.html and nothing aside", len(entries))
	}
	p := readPage(t, path)
	for _, l := range p.links {
		if !strings.HasPrefix(l, "#") {
			t.Errorf("link %q leaves the page", l)
		}
	}
	if p.scripts != 0 {
		t.Errorf("%d scripts, links, images or frames", p.scripts)
	}
	if p.sections != len(r.Sections()) {
		t.Errorf("%d sections, want %d", p.sections, len(r.Sections()))
	}
	for _, want := range []string{
		"ended incomplete\nstatus",
		"12345\nrecords",
		"1\njobs failed",
		"1\nspecs dead-lettered",
		strconv.Itoa(HTMLRows+5) + "\nSharePoint errors",
		"The events of 1 jobs were no longer stored",
		"Records published per object type",
		"SPFile", "SPListItem", "SPFolder",
		"Specs per state", "done", "failed", "dead-lettered",
		"Seconds queued and exporting per job",
		"single https://x/sites/hr/Docs",
		"multi-url https://x/sites/fin +1",
		"Shared Documents/<b>0</b> & co.docx",
		fmt.Sprintf("Showing the first %d of %d failures; FailureSummary.csv lists them all.", HTMLRows, HTMLRows+7),
	} {
		if !strings.Contains(p.texts, want) {
			t.Errorf("report.html does not show %q", want)
		}
	}
	if got := p.rows["Failures"]; got != 1+HTMLRows {
		t.Errorf("failures table has %d rows, want a header and %d", got, HTMLRows)
	}
	if got := p.rows["Jobs"]; got != 1+len(r.Jobs) {
		t.Errorf("jobs table has %d rows, want a header and %d", got, len(r.Jobs))
	}
	if n := strings.Count(p.texts, "Showing the first"); n != 1 {
		t.Errorf("%d tables capped, want the failures' alone", n)
	}
}

// TestHTMLReportOfAnEmptyPlan: a plan with no spec yet still gets every section, each saying
// there is nothing, and is not presented as complete.
func TestHTMLReportOfAnEmptyPlan(t *testing.T) {
	r := &Report{PlanID: "p0", Built: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), Summary: Summary{JobsByState: map[string]int{}}}
	path, err := r.WriteHTML(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := readPage(t, path)
	for _, want := range []string{"running\nstatus", "No record was published.", "The plan has no spec yet.", "No job has started yet.", "No failure"} {
		if !strings.Contains(p.texts, want) {
			t.Errorf("report.html does not show %q:\n%s", want, p.texts)
		}
	}
}
