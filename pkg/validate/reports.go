package validate

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/pkg/report"
)

// The report files WriteReports writes, named after the SPMT reports they resemble
// (docs/validation.md maps their columns).
const (
	SummaryFile        = "SummaryReport.csv"
	ItemFile           = "ItemReport.csv"
	ItemFailureFile    = "ItemFailureReport.csv"
	FailureSummaryFile = "FailureSummary.csv"
	HTMLFile           = "report.html"
)

// DefaultHTMLItems caps the item failures the HTML report lists; the CSVs list them all.
const DefaultHTMLItems = 1000

// Item statuses in the reports.
const (
	StatusPassed = "Passed"
	StatusFailed = "Failed"
)

// SummaryColumns are the columns of SummaryReport.csv: one row per list, then one for all.
var SummaryColumns = append([]string{"Source", "Destination", "Status", "Total items", "Passed items", "Failed items", "Total bytes"},
	checkColumns()...)

func checkColumns() []string {
	out := make([]string, 0, len(Checks))
	for _, c := range Checks {
		out = append(out, "Failed "+string(c))
	}
	return out
}

// ItemColumns are the columns of ItemReport.csv and ItemFailureReport.csv: one row per item.
var ItemColumns = []string{"Source", "Destination", "Item name", "Extension", "Item size", "Content type", "Status",
	"Result category", "Message", "Source list"}

// FailureSummaryColumns are the columns of FailureSummary.csv: one row per list and check that failed.
var FailureSummaryColumns = []string{"Source", "Destination", "Result category", "Failed items"}

// WriteSummaryCSV writes SummaryReport.csv.
func WriteSummaryCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	rows := [][]string{SummaryColumns}
	for _, l := range append(append([]ListSummary(nil), r.Lists...), r.Total) {
		row := []string{l.List, l.DestinationList, status(l.Failed == 0), itoa(l.Items), itoa(l.Passed), itoa(l.Failed),
			strconv.FormatInt(l.Bytes, 10)}
		for _, c := range Checks {
			row = append(row, itoa(l.ByCheck[c]))
		}
		rows = append(rows, row)
	}
	return writeAll(cw, rows)
}

// WriteItemCSV writes ItemReport.csv (every item) or, with failedOnly, ItemFailureReport.csv.
func WriteItemCSV(w io.Writer, r *Result, failedOnly bool) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ItemColumns); err != nil {
		return err
	}
	for i := range r.Items {
		it := &r.Items[i]
		if failedOnly && it.Passed() {
			continue
		}
		if err := cw.Write(itemRow(it)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func itemRow(it *ItemResult) []string {
	u := it.SourceURL
	if u == "" {
		u = it.DestinationURL
	}
	name := path.Base(u)
	ext := ""
	if it.Kind == KindFile {
		ext = strings.TrimPrefix(path.Ext(name), ".")
	}
	size := ""
	if it.Size >= 0 {
		size = strconv.FormatInt(it.Size, 10)
	}
	var cats, msgs []string
	for _, f := range it.Failures {
		cats = append(cats, string(f.Check))
		msgs = append(msgs, message(f))
	}
	return []string{it.SourceURL, it.DestinationURL, name, ext, size, string(it.Kind), status(it.Passed()),
		strings.Join(cats, ";"), strings.Join(msgs, "; "), it.List}
}

// message explains one failure.
func message(f Failure) string {
	switch f.Check {
	case CheckMissing:
		return "not at the destination (expected at " + f.Destination + ")"
	case CheckExtra:
		return "at the destination only"
	}
	return fmt.Sprintf("%s: source %s, destination %s", f.Check, orNone(f.Source), orNone(f.Destination))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// WriteFailureSummaryCSV writes FailureSummary.csv.
func WriteFailureSummaryCSV(w io.Writer, r *Result) error {
	rows := [][]string{FailureSummaryColumns}
	for _, l := range r.Lists {
		for _, c := range Checks {
			if n := l.ByCheck[c]; n > 0 {
				rows = append(rows, []string{l.List, l.DestinationList, string(c), itoa(n)})
			}
		}
	}
	return writeAll(csv.NewWriter(w), rows)
}

func writeAll(cw *csv.Writer, rows [][]string) error {
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func status(ok bool) string {
	if ok {
		return StatusPassed
	}
	return StatusFailed
}

func itoa(n int) string { return strconv.Itoa(n) }

// Sections are the validation's sections of an HTML report: overview, per-list summary, failures by
// check and item failures (at most maxItems rows, with a pointer to ItemFailureReport.csv beyond).
func (r *Result) Sections(maxItems int) []report.Section {
	t := r.Total
	overview := report.Section{Title: "Overview",
		Note: fmt.Sprintf("Source: %s. Destination: %s. Mappings: %s. Modified-time tolerance: %s.", r.Source, r.Destination,
			mappings(r.Options.Mappings), r.Options.MtimeTolerance),
		Stats: []report.Stat{
			{Label: "items compared", Value: itoa(t.Items)},
			{Label: "passed", Value: itoa(t.Passed)},
			{Label: "failed", Value: itoa(t.Failed), Bad: t.Failed > 0},
			{Label: "lists", Value: itoa(len(r.Lists))},
			{Label: "result", Value: status(t.Failed == 0), Bad: t.Failed > 0},
		}}
	perList := report.Section{Title: "Per list", Chart: &report.BarChart{Title: "Items per list", Series: []string{"passed", "failed"}, Colors: []string{report.Pass, report.Fail}},
		Table: &report.Table{Columns: []string{"Source", "Destination", "Status", "Items", "Passed", "Failed", "Bytes"}}}
	for _, l := range r.Lists {
		perList.Chart.Bars = append(perList.Chart.Bars, report.Bar{Label: l.List, Values: []float64{float64(l.Passed), float64(l.Failed)}})
		perList.Table.Rows = append(perList.Table.Rows, []string{l.List, l.DestinationList, status(l.Failed == 0), itoa(l.Items),
			itoa(l.Passed), itoa(l.Failed), strconv.FormatInt(l.Bytes, 10)})
	}
	byCheck := report.Section{Title: "Failures by check", Chart: &report.BarChart{Title: "Failed items per check", Series: []string{"failed"}, Colors: []string{report.Fail}},
		Table: &report.Table{Columns: append([]string{"Source list"}, stringsOf(Checks)...)}}
	for _, c := range Checks {
		byCheck.Chart.Bars = append(byCheck.Chart.Bars, report.Bar{Label: string(c), Values: []float64{float64(t.ByCheck[c])}})
	}
	for _, l := range append(append([]ListSummary(nil), r.Lists...), t) {
		row := []string{l.List}
		for _, c := range Checks {
			row = append(row, itoa(l.ByCheck[c]))
		}
		byCheck.Table.Rows = append(byCheck.Table.Rows, row)
	}
	items := report.Section{Title: "Item failures", Table: &report.Table{Columns: []string{"Source", "Destination", "Type", "Checks", "Details"}}}
	shown := 0
	for i := range r.Items {
		it := &r.Items[i]
		if it.Passed() {
			continue
		}
		if shown == maxItems {
			items.Table.Note = fmt.Sprintf("Showing the first %d of %d failed items; %s lists them all.", maxItems, t.Failed, ItemFailureFile)
			break
		}
		shown++
		row := itemRow(it)
		items.Table.Rows = append(items.Table.Rows, []string{it.SourceURL, it.DestinationURL, string(it.Kind), row[7], row[8]})
	}
	if t.Failed == 0 {
		items.Note = "No item failed."
	}
	return []report.Section{overview, perList, byCheck, items}
}

func stringsOf(cs []Check) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

func mappings(ms []Mapping) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return strings.Join(s, ", ")
}

// WriteReports writes the four CSVs and report.html into dir (created if needed) and returns their
// paths. maxItems caps the HTML report's item failures (0: DefaultHTMLItems).
func WriteReports(dir string, r *Result, maxItems int, now time.Time) ([]string, error) {
	if maxItems <= 0 {
		maxItems = DefaultHTMLItems
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	html := report.HTML{Title: "Post-migration validation", Subtitle: fmt.Sprintf("%s against %s, %s", r.Destination, r.Source,
		now.UTC().Format(time.RFC3339)), Sections: r.Sections(maxItems)}
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{SummaryFile, func(w io.Writer) error { return WriteSummaryCSV(w, r) }},
		{ItemFile, func(w io.Writer) error { return WriteItemCSV(w, r, false) }},
		{ItemFailureFile, func(w io.Writer) error { return WriteItemCSV(w, r, true) }},
		{FailureSummaryFile, func(w io.Writer) error { return WriteFailureSummaryCSV(w, r) }},
		{HTMLFile, html.Write},
	}
	var out []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := report.WriteFile(p, f.write); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
