package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

// Element counts and attribute checks of a page parsed as XML.
type parsed struct {
	elements map[string]int
	texts    []string
	links    []string // every src and href
}

// parseXML parses the page strictly (every element closed, no unknown entity): it is well-formed.
func parseXML(t *testing.T, page []byte) parsed {
	t.Helper()
	p := parsed{elements: map[string]int{}}
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict = true
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, page)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			depth++
			p.elements[tk.Name.Local]++
			for _, a := range tk.Attr {
				if a.Name.Local == "src" || a.Name.Local == "href" {
					p.links = append(p.links, a.Value)
				}
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if s := strings.TrimSpace(string(tk)); s != "" {
				p.texts = append(p.texts, s)
			}
		}
	}
	if depth != 0 {
		t.Fatalf("unbalanced elements (depth %d)", depth)
	}
	return p
}

// TestHTMLIsSelfContainedAndWellFormed: a report with every kind of section and hostile text
// parses as XML, links only to its own sections, carries no script, escapes the text and draws one
// rectangle per non-zero bar segment plus one per legend entry.
func TestHTMLIsSelfContainedAndWellFormed(t *testing.T) {
	hostile := `<script>alert("x")</script> & 'q'`
	h := HTML{Title: "Validation " + hostile, Subtitle: "sub", Sections: []Section{
		{Title: "Overview", Note: hostile, Stats: []Stat{{Label: "items", Value: "12"}, {Label: "failed", Value: "3", Bad: true}}},
		{Title: "Per list", Chart: &BarChart{Title: "results", Series: []string{"passed", "failed"}, Bars: []Bar{
			{Label: "/sites/a/Docs", Values: []float64{9, 1}}, {Label: hostile, Values: []float64{0, 2}}, {Label: "empty", Values: []float64{0, 0}},
		}}},
		{Title: "Table", Table: &Table{Columns: []string{"a", "b"}, Rows: [][]string{{"1", hostile}, {"https://example.com/x", "2"}}, Note: "capped"}},
	}}
	var buf bytes.Buffer
	if err := h.Write(&buf); err != nil {
		t.Fatal(err)
	}
	p := parseXML(t, buf.Bytes())
	for _, l := range p.links {
		if !strings.HasPrefix(l, "#") {
			t.Errorf("link %q leaves the page", l)
		}
	}
	if len(p.links) != 3 {
		t.Errorf("%d links, want one per section", len(p.links))
	}
	if p.elements["script"] != 0 || p.elements["link"] != 0 || p.elements["img"] != 0 || p.elements["iframe"] != 0 {
		t.Errorf("elements %v: a script, a link, an image or a frame", p.elements)
	}
	if got := p.elements["rect"]; got != 2+3 {
		t.Errorf("%d rectangles, want 2 legend entries and 3 bar segments", got)
	}
	if p.elements["section"] != 3 || p.elements["table"] != 1 || p.elements["svg"] != 1 || p.elements["tr"] != 3 {
		t.Errorf("elements %v", p.elements)
	}
	if !slicesContains(p.texts, hostile) {
		t.Errorf("hostile text not shown as text: %q", p.texts)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if strings.Contains(x, v) {
			return true
		}
	}
	return false
}
