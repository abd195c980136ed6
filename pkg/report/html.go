// Package report builds one self-contained HTML report out of sections of plain values: key
// figures, tables and bar charts drawn as inline SVG. The page has no script, no font and no
// reference to anything outside itself, so it renders offline in any browser. Validation
// (pkg/validate) and the run reports each contribute sections; a report is their concatenation.
// WriteFile writes a report's files (the page, its CSV companions) whole or not at all.
package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
)

// HTML is a report: a title, a subtitle (what it is about, when it was made) and its sections.
type HTML struct {
	Title, Subtitle string
	Sections        []Section
}

// Section is one part of the report: a heading, an optional paragraph, then whichever of key
// figures, chart and table it has, in that order.
type Section struct {
	Title string
	Note  string
	Stats []Stat
	Chart *BarChart
	Table *Table
}

// Stat is one key figure; Bad shows it in the failure colour.
type Stat struct {
	Label, Value string
	Bad          bool
}

// BarChart is a horizontal bar chart: one bar per label, each stacked from the values of the
// series (in series order, each in its own colour, named in the legend).
type BarChart struct {
	Title  string
	Series []string
	// Colors are the series' colours (CSS colours such as Pass and Fail); a series beyond them
	// takes the next of a fixed palette.
	Colors []string
	Bars   []Bar
}

// Colours for series that mean success and failure.
const (
	Pass = "#2e7d32"
	Fail = "#c62828"
)

// Bar is one labelled bar: Values[i] belongs to Series[i]; negative values count as 0.
type Bar struct {
	Label  string
	Values []float64
}

// Table is a table of text cells; Note follows it (e.g. that it is capped, and where the rest is).
type Table struct {
	Columns []string
	Rows    [][]string
	Note    string
}

// Series colours: the first is success, the second failure, then neutral tones.
var palette = []string{Pass, Fail, "#ef6c00", "#1565c0", "#6a1b9a", "#00838f", "#5d4037", "#546e7a"}

// chart geometry, in SVG user units.
const (
	chartWidth  = 760.0
	labelWidth  = 260.0
	valueWidth  = 70.0
	barHeight   = 18.0
	barGap      = 6.0
	legendSpace = 26.0
)

type svgRect struct {
	X, Y, W, H float64
	Fill       string
	Title      string
}

type svgText struct {
	X, Y   float64
	Anchor string
	Text   string
}

type chartView struct {
	Title         string
	Width, Height float64
	Rects         []svgRect
	Texts         []svgText
}

type sectionView struct {
	Section
	ID    string
	Chart *chartView
}

// Write renders the report.
func (h *HTML) Write(w io.Writer) error {
	view := struct {
		Title, Subtitle string
		Sections        []sectionView
	}{Title: h.Title, Subtitle: h.Subtitle}
	for i, s := range h.Sections {
		sv := sectionView{Section: s, ID: "s" + strconv.Itoa(i+1)}
		if s.Chart != nil {
			sv.Chart = layout(s.Chart)
		}
		view.Sections = append(view.Sections, sv)
	}
	if err := page.Execute(w, view); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// layout places a chart's bars, labels and legend.
func layout(c *BarChart) *chartView {
	v := &chartView{Title: c.Title, Width: chartWidth}
	maxTotal := 0.0
	for _, b := range c.Bars {
		maxTotal = math.Max(maxTotal, total(b))
	}
	plot := chartWidth - labelWidth - valueWidth
	color := func(i int) string {
		if i < len(c.Colors) {
			return c.Colors[i]
		}
		return palette[i%len(palette)]
	}
	x := 0.0
	for i, name := range c.Series {
		v.Rects = append(v.Rects, svgRect{X: x, Y: 4, W: 12, H: 12, Fill: color(i), Title: name})
		v.Texts = append(v.Texts, svgText{X: x + 16, Y: 14, Anchor: "start", Text: name})
		x += 16 + 8*float64(len(name)) + 18
	}
	y := legendSpace
	for _, b := range c.Bars {
		v.Texts = append(v.Texts, svgText{X: labelWidth - 8, Y: y + barHeight - 5, Anchor: "end", Text: clip(b.Label, 40)})
		x := labelWidth
		for i, val := range b.Values {
			if val <= 0 || maxTotal == 0 {
				continue
			}
			wd := val / maxTotal * plot
			name := ""
			if i < len(c.Series) {
				name = c.Series[i]
			}
			v.Rects = append(v.Rects, svgRect{X: x, Y: y, W: wd, H: barHeight, Fill: color(i),
				Title: b.Label + ": " + name + " " + format(val)})
			x += wd
		}
		v.Texts = append(v.Texts, svgText{X: x + 6, Y: y + barHeight - 5, Anchor: "start", Text: format(total(b))})
		y += barHeight + barGap
	}
	v.Height = y + 4
	return v
}

func total(b Bar) float64 {
	t := 0.0
	for _, v := range b.Values {
		t += math.Max(v, 0)
	}
	return t
}

func format(v float64) string {
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// clip shortens a label to n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// The page is XHTML-compatible (every element closed, no named entities) so that it parses as
// XML too, and its style sheet avoids '<' and '&'.
var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em; color: #212121; }
h1 { margin-bottom: 0.2em; }
.subtitle { color: #616161; margin-top: 0; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 1em; }
section { margin: 2em 0; }
.stats { display: flex; flex-wrap: wrap; gap: 1em; }
.stat { border: 1px solid #e0e0e0; border-radius: 6px; padding: 0.6em 1em; min-width: 8em; }
.stat .value { font-size: 1.6em; font-weight: 600; color: #2e7d32; }
.stat.bad .value { color: #c62828; }
.stat .label { color: #616161; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; margin-top: 1em; }
th, td { border: 1px solid #e0e0e0; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td { word-break: break-all; }
svg text { font-size: 12px; fill: #424242; }
.note { color: #616161; font-style: italic; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{with .Subtitle}}<p class="subtitle">{{.}}</p>{{end}}
<nav><ul>{{range .Sections}}<li><a href="#{{.ID}}">{{.Title}}</a></li>{{end}}</ul></nav>
{{range .Sections}}<section id="{{.ID}}">
<h2>{{.Title}}</h2>
{{with .Note}}<p>{{.}}</p>{{end}}
{{with .Stats}}<div class="stats">{{range .}}<div class="stat{{if .Bad}} bad{{end}}"><div class="value">{{.Value}}</div><div class="label">{{.Label}}</div></div>{{end}}</div>{{end}}
{{with .Chart}}<figure>
<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}"><title>{{.Title}}</title>
{{range .Rects}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Fill}}"><title>{{.Title}}</title></rect>
{{end}}{{range .Texts}}<text x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>
{{end}}</svg>
<figcaption>{{.Title}}</figcaption>
</figure>{{end}}
{{with .Table}}<table>
<thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{with .Note}}<p class="note">{{.}}</p>{{end}}{{end}}
</section>
{{end}}</body>
</html>
`))
