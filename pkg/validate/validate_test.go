package validate

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// items is a Source over a slice; err, when set, fails it after the items.
type items struct {
	name string
	its  []Item
	err  error
}

func (s items) Name() string { return s.name }

func (s items) Items(_ context.Context, fn func(*Item) error) error {
	for i := range s.its {
		if err := fn(&s.its[i]); err != nil {
			return err
		}
	}
	return s.err
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func file(url string) Item {
	return Item{List: "/sites/hr/Docs", URL: url, Kind: KindFile, Size: 10, Modified: t0, Versions: 2,
		Author: "i:0#.f|membership|ann@contoso.com", Editor: "i:0#.f|membership|ann@contoso.com",
		Permissions: PermissionsUnique, Principals: []string{"HR Owners=Full Control", "i:0#.f|membership|ann@contoso.com=Read"}}
}

// moved is the destination's copy of it: new site, logins in the other domain.
func moved(it Item) Item {
	it.List = strings.Replace(it.List, "/sites/hr", "/sites/hr-new", 1)
	it.URL = strings.Replace(it.URL, "/sites/hr", "/sites/hr-new", 1)
	it.Author = strings.Replace(it.Author, "contoso", "fabrikam", 1)
	it.Editor = strings.Replace(it.Editor, "contoso", "fabrikam", 1)
	var ps []string
	for _, p := range it.Principals {
		ps = append(ps, strings.Replace(p, "contoso", "fabrikam", 1))
	}
	it.Principals = ps
	return it
}

var opts = Options{Mappings: []Mapping{{From: "/sites/hr", To: "/sites/hr-new"}}, MtimeTolerance: 2 * time.Second,
	Logins: map[string]string{"i:0#.f|membership|ann@contoso.com": "i:0#.f|membership|ann@fabrikam.com"}}

func TestValidateChecks(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Item)
		check Check // "" for none
	}{
		{"identical copy", func(*Item) {}, ""},
		{"modified within the tolerance", func(d *Item) { d.Modified = t0.Add(time.Second) }, ""},
		{"modified beyond the tolerance", func(d *Item) { d.Modified = t0.Add(3 * time.Second) }, CheckModified},
		{"size", func(d *Item) { d.Size = 11 }, CheckSize},
		{"unknown size is not compared", func(d *Item) { d.Size = -1 }, ""},
		{"versions", func(d *Item) { d.Versions = 1 }, CheckVersions},
		{"author not mapped", func(d *Item) { d.Author = "i:0#.f|membership|ann@contoso.com" }, CheckAuthor},
		{"editor", func(d *Item) { d.Editor = "i:0#.f|membership|bob@fabrikam.com" }, CheckEditor},
		{"login case ignored", func(d *Item) { d.Editor = strings.ToUpper(d.Editor) }, ""},
		{"unique permissions lost", func(d *Item) { d.Permissions, d.Principals = PermissionsInherited, nil }, CheckPermissions},
		{"a principal dropped", func(d *Item) { d.Principals = d.Principals[:1] }, CheckPermissions},
		{"a role changed", func(d *Item) { d.Principals[0] = "HR Owners=Read" }, CheckPermissions},
		{"principal order ignored", func(d *Item) { d.Principals[0], d.Principals[1] = d.Principals[1], d.Principals[0] }, ""},
		{"unknown permissions are not compared", func(d *Item) { d.Permissions = PermissionsUnknown }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := file("/sites/hr/Docs/a.docx")
			d := moved(s)
			tt.edit(&d)
			res, err := Validate(context.Background(), items{name: "src", its: []Item{s}}, items{name: "dst", its: []Item{d}}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Items) != 1 {
				t.Fatalf("%d results", len(res.Items))
			}
			fs := res.Items[0].Failures
			if tt.check == "" {
				if len(fs) != 0 || res.Failed() {
					t.Fatalf("failures %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Check != tt.check {
				t.Fatalf("failures %+v, want one %s", fs, tt.check)
			}
			if res.Total.ByCheck[tt.check] != 1 || res.Total.Failed != 1 || res.Lists[0].DestinationList != "/sites/hr-new/Docs" {
				t.Errorf("summary %+v lists %+v", res.Total, res.Lists)
			}
		})
	}
}

// TestValidatePresence: an item only at the source is missing, one only at the destination is
// extra (in its source list), items outside the mappings are out of scope, and a library-level
// mapping wins over the site's.
func TestValidatePresence(t *testing.T) {
	a, b := file("/sites/hr/Docs/a.docx"), file("/sites/hr/Docs/b.docx")
	other := file("/sites/other/Docs/x.docx")
	lib := file("/sites/hr/Archive/z.docx")
	lib.List = "/sites/hr/Archive"
	libDst := moved(lib)
	libDst.URL, libDst.List = "/sites/archive/Docs/z.docx", "/sites/archive/Docs"
	extra := moved(file("/sites/hr/Docs/c.docx"))
	o := opts
	o.Mappings = append(o.Mappings, Mapping{From: "/sites/hr/Archive", To: "/sites/archive/Docs"})
	res, err := Validate(context.Background(), items{name: "src", its: []Item{a, b, other, lib}},
		items{name: "dst", its: []Item{moved(a), extra, libDst}}, o)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Check{}
	for _, it := range res.Items {
		for _, f := range it.Failures {
			got[it.SourceURL+it.DestinationURL] = f.Check
		}
	}
	want := map[string]Check{"/sites/hr/Docs/b.docx": CheckMissing, "/sites/hr-new/Docs/c.docx": CheckExtra}
	if len(got) != len(want) || got["/sites/hr/Docs/b.docx"] != CheckMissing || got["/sites/hr-new/Docs/c.docx"] != CheckExtra {
		t.Fatalf("failures %v, want %v", got, want)
	}
	if res.Total.Items != 4 || res.Total.Failed != 2 || len(res.Lists) != 2 {
		t.Errorf("total %+v lists %+v", res.Total, res.Lists)
	}
	for _, it := range res.Items {
		if it.DestinationURL == "/sites/hr-new/Docs/c.docx" && it.List != "/sites/hr/Docs" {
			t.Errorf("extra item in list %q, want its source list", it.List)
		}
	}
}

// TestValidateRefusesPartialResults: a mapping that maps nothing (on either side), a source that
// fails, a duplicated item or mapping: an error naming it, and no result.
func TestValidateRefusesPartialResults(t *testing.T) {
	a := file("/sites/hr/Docs/a.docx")
	src, dst := items{name: "src", its: []Item{a}}, items{name: "dst", its: []Item{moved(a)}}
	withMapping := func(ms ...Mapping) Options { o := opts; o.Mappings = append(o.Mappings, ms...); return o }
	tests := []struct {
		name     string
		src, dst Source
		opts     Options
		want     string
	}{
		{"no mapping", src, dst, Options{}, "no path mapping"},
		{"mapping of no source item", src, dst, withMapping(Mapping{From: "/sites/fin", To: "/sites/fin-new"}), "mapping /sites/fin=/sites/fin-new maps nothing: no item of src"},
		{"mapping to no destination item", src, items{name: "dst", its: nil}, opts, "mapping /sites/hr=/sites/hr-new maps nothing: no item of dst"},
		{"source fails", items{name: "src", its: []Item{a}, err: errors.New("pass 7 unknown")}, dst, opts, "read src: pass 7 unknown"},
		{"destination fails", src, items{name: "dst", err: errors.New("boom")}, opts, "read dst: boom"},
		{"item twice", items{name: "src", its: []Item{a, a}}, dst, opts, "item /sites/hr/Docs/a.docx twice"},
		{"prefix mapped twice", src, dst, withMapping(Mapping{From: "/sites/HR", To: "/x"}), "mapped twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Validate(context.Background(), tt.src, tt.dst, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || res != nil {
				t.Fatalf("Validate = %v, %v; want no result and an error saying %q", res, err, tt.want)
			}
		})
	}
}

// utf16 encodes ASCII text as UTF-16LE, as a spreadsheet program's "Unicode text" export does.
func utf16(ascii string) string {
	var b strings.Builder
	for i := 0; i < len(ascii); i++ {
		b.WriteByte(ascii[i])
		b.WriteByte(0)
	}
	return b.String()
}

func csvSource(name, body string) *CSVSource {
	return NewCSVSource(name, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil })
}

func TestCSVSourceReadsTheDocumentedColumns(t *testing.T) {
	s := NewCSVSource("source.csv", func() (io.ReadCloser, error) { return os.Open("testdata/source.csv") })
	var got []Item
	if err := s.Items(context.Background(), func(it *Item) error { got = append(got, *it); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d items", len(got))
	}
	f := got[0]
	if f.Kind != KindFile || f.Size != 100 || !f.Modified.Equal(t0) || f.Versions != 3 || f.Permissions != PermissionsUnique ||
		len(f.Principals) != 2 || f.Editor != "i:0#.f|membership|bob@contoso.com" {
		t.Errorf("file %+v", f)
	}
	if d := got[1]; d.Kind != KindFolder || d.Size != -1 || d.Versions != 0 || d.Permissions != PermissionsInherited {
		t.Errorf("folder %+v", d)
	}
	if li := got[2]; li.Kind != KindListItem || !li.Modified.IsZero() || li.Permissions != PermissionsUnknown || li.Author != "" {
		t.Errorf("list item %+v", li)
	}
}

func TestCSVSourceBadInput(t *testing.T) {
	head := strings.Join(CSVColumns, ",") + "\n"
	row := func(cells ...string) string {
		base := []string{"/sites/hr/Docs", "/sites/hr/Docs/a.docx", "File", "1", "2024-05-01T12:00:00Z", "1", "a", "b", "FALSE", ""}
		for i := 0; i+1 < len(cells); i += 2 {
			for j, c := range CSVColumns {
				if c == cells[i] {
					base[j] = cells[i+1]
				}
			}
		}
		return strings.Join(base, ",") + "\n"
	}
	tests := []struct{ name, body, want string }{
		{"empty", "", "report.csv row 1: header"},
		{"missing columns", "List,URL,Type\n", "report.csv row 1: missing column(s) Size, Modified, Versions, Author, Editor, UniquePermissions, Principals"},
		{"invalid UTF-8", head + row() + row("Author", "an\xffn"), "report.csv row 3 column Author: invalid UTF-8"},
		{"bad size", head + row("Size", "12kB"), "report.csv row 2 column Size: \"12kB\" is not a size in bytes"},
		{"negative size", head + row("Size", "-1"), "row 2 column Size"},
		{"bad date", head + row("Modified", "01/05/2024"), "report.csv row 2 column Modified: \"01/05/2024\" is not an RFC 3339 time"},
		{"bad versions", head + row("Versions", "0"), "row 2 column Versions"},
		{"bad type", head + row("Type", "Page"), "row 2 column Type"},
		{"relative URL", head + row("URL", "Docs/a"), "row 2 column URL"},
		{"bad boolean", head + row("UniquePermissions", "yes"), "row 2 column UniquePermissions"},
		{"bad principal", head + row("Principals", "bob"), "row 2 column Principals"},
		{"ragged row", head + "a,b\n", "report.csv row 2: "},
		{"UTF-16 with a byte order mark", "\xff\xfe" + utf16(head+row()), "report.csv row 1: header: the file is UTF-16, not UTF-8"},
		{"UTF-16 without a byte order mark", utf16(head + row()), "report.csv row 1: header: the file is UTF-16"},
		{"header in Latin-1", strings.Replace(head, "Principals", "Principal\xe9s", 1) + row(), "report.csv row 1: header: invalid UTF-8"},
		{"invalid UTF-8 in the URL", head + row() + row() + row("URL", "/sites/hr/Docs/caf\xe9.docx"), "report.csv row 4 column URL: invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			err := csvSource("report.csv", tt.body).Items(context.Background(), func(*Item) error { n++; return nil })
			var ce *CSVError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a CSVError saying %q", err, tt.want)
			}
		})
	}
}

// FuzzCSVSource: any input ends in items that satisfy the documented invariants or in an error
// naming a row; never a panic.
func FuzzCSVSource(f *testing.F) {
	b, err := os.ReadFile("testdata/source.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	f.Add(strings.Join(CSVColumns, ",") + "\n/a,/a/b,File,x,,,,,,\n")
	f.Fuzz(func(t *testing.T, body string) {
		err := csvSource("f.csv", body).Items(context.Background(), func(it *Item) error {
			if !strings.HasPrefix(it.URL, "/") || !strings.HasPrefix(it.List, "/") || it.Size < -1 || it.Versions < 0 {
				t.Fatalf("item %+v breaks the invariants", it)
			}
			return nil
		})
		var ce *CSVError
		if err != nil && (!errors.As(err, &ce) || ce.Row < 1) {
			t.Fatalf("error %v is not a CSVError naming a row", err)
		}
	})
}

func TestReadLoginMapAndRecordsBadInput(t *testing.T) {
	m, err := ReadLoginMap("users.csv", strings.NewReader("a@contoso.com,a@fabrikam.com\nHR Owners,HR Owners,TRUE\n"))
	if err != nil || m["a@contoso.com"] != "a@fabrikam.com" || m["HR Owners"] != "HR Owners" {
		t.Fatalf("%v %v", m, err)
	}
	for body, want := range map[string]string{
		"a\n":                   "users.csv row 1: 1 columns",
		"a,b\na,c\n":            "users.csv row 2: a mapped twice",
		"a,b,maybe\n":           "users.csv row 1 column C",
		"a,b\n\xff,b\n":         "users.csv row 2 column A: invalid UTF-8",
		"a,\"b\n":               "users.csv row 1",
		"a,b,FALSE\n,x,FALSE\n": "users.csv row 2: empty login",
	} {
		if _, err := ReadLoginMap("users.csv", strings.NewReader(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	for body, want := range map[string]string{
		"{\"job_id\":\"j\"}\n\n{nope\n":                       "r.jsonl line 3",
		"{\"job_id\":\"j\"}\n{\"job_id\":\"caf\xe9\"}\n":      "r.jsonl line 2",
		"{\"job_id\":\"j\"}\n{\"job_id\":\"j\",\"nope\":1}\n": "r.jsonl line 2",
	} {
		if recs, err := ReadRecordsJSONL("r.jsonl", strings.NewReader(body)); err == nil || recs != nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %d records, %v; want none and an error naming %q", body, len(recs), err, want)
		}
	}
}
