package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<SPObjects><SPObject Id="&lol9;"/></SPObjects>`

func TestHostileInput(t *testing.T) {
	deep := "<SPObjects>" + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + "</SPObjects>"
	tests := []struct {
		name  string
		doc   string
		class error
		at    string // the error offset is that of the first occurrence of at
		off   int64  // or this offset, when at is empty
		opts  Options
		// refMisses: the encoding/xml reference has no such check (or is
		// too slow on it to run here).
		refMisses bool
	}{
		{name: "doctype", doc: `<?xml version="1.0"?><!DOCTYPE SPObjects SYSTEM "http://example.com/x.dtd"><SPObjects/>`, class: ErrDTD, at: "<!DOCTYPE"},
		{name: "billion laughs", doc: billionLaughs, class: ErrDTD, at: "<!DOCTYPE"},
		{name: "entity declaration inside the root", doc: `<SPObjects><!ENTITY x "y"></SPObjects>`, class: ErrDTD, at: "<!ENTITY"},
		{name: "external entity reference", doc: `<SPObjects><SPObject Id="&xxe;"/></SPObjects>`, class: ErrMalformed, at: "&xxe;"},
		{name: "deep nesting", doc: deep, class: ErrLimit, off: int64(len("<SPObjects>") + 63*len("<a>"))},
		{name: "depth bound from options", doc: "<SPObjects><a><b/></a></SPObjects>", class: ErrLimit, at: "<b/>", opts: Options{MaxDepth: 2}},
		{name: "10 MB attribute", doc: `<SPObjects><SPObject Id="` + strings.Repeat("x", 10<<20) + `"/></SPObjects>`, class: ErrLimit, at: "xxx", refMisses: true},
		{name: "token larger than MaxTokenBytes", doc: `<SPObjects><SPObject` + strings.Repeat(` A="xxxxxxxxxx"`, 1000) + `/></SPObjects>`, class: ErrLimit, at: "<SPObject A", opts: Options{MaxTokenBytes: 4096, BufferSize: 1024}, refMisses: true},
		{name: "children bound from options", doc: `<SPObjects><SPObject ObjectType="DeploymentRoleAssignments"><RoleAssignments><RoleAssignment ScopeId="s"><Assignment RoleId="1" PrincipalId="1"/><Assignment RoleId="1" PrincipalId="2"/><Assignment RoleId="1" PrincipalId="3"/></RoleAssignment></RoleAssignments></SPObject></SPObjects>`, class: ErrLimit, at: `<Assignment RoleId="1" PrincipalId="3"`, opts: Options{MaxChildren: 2}},
		{name: "children bound on versions", doc: `<SPObjects><SPObject ObjectType="SPListItem"><ListItem Id="1"><Versions><ListItem Id="1"/><ListItem Id="1"/></Versions></ListItem></SPObject></SPObjects>`, class: ErrLimit, at: `<ListItem Id="1"/></Versions>`, opts: Options{MaxChildren: 1}},
		{name: "truncated", doc: `<SPObjects><SPObject Id="a"><File Url="x"`, class: ErrMalformed, at: "<File"},
		{name: "truncated between tags", doc: `<SPObjects><SPObject Id="a">`, class: ErrMalformed, at: "\x00"},
		{name: "empty input", doc: ``, class: ErrMalformed, at: "\x00"},
		{name: "invalid UTF-8 in element name", doc: "<SPObjects><SP\xffObject/></SPObjects>", class: ErrMalformed, at: "SP\xff"},
		{name: "invalid UTF-8 in attribute name", doc: "<SPObjects><SPObject I\xc3d=\"a\"/></SPObjects>", class: ErrMalformed, at: "I\xc3d"},
		{name: "invalid UTF-8 in value", doc: "<SPObjects><SPObject Id=\"a\xffb\"/></SPObjects>", class: ErrMalformed, at: "a\xffb"},
		{name: "control character in value", doc: "<SPObjects><SPObject Id=\"a\x01\"/></SPObjects>", class: ErrMalformed, at: "\x01"},
		{name: "less-than in value", doc: `<SPObjects><SPObject Id="a<b"/></SPObjects>`, class: ErrMalformed, at: "<b\""},
		{name: "character reference to NUL", doc: `<SPObjects><SPObject Id="&#0;"/></SPObjects>`, class: ErrMalformed, at: "&#0;"},
		{name: "mismatched end tag", doc: `<SPObjects><SPObject></SPObjectz></SPObjects>`, class: ErrMalformed, at: "</SPObjectz>"},
		{name: "end tag without start", doc: `<SPObjects></SPObjects></SPObjects>`, class: ErrMalformed, off: int64(len("<SPObjects></SPObjects>"))},
		{name: "second root", doc: `<SPObjects></SPObjects><SPObjects/>`, class: ErrMalformed, at: "<SPObjects/>"},
		{name: "garbage after the root", doc: "<SPObjects/>\ngarbage", class: ErrMalformed, at: "garbage"},
		{name: "text before the root", doc: "hello<SPObjects/>", class: ErrMalformed, at: "hello"},
		{name: "unquoted attribute", doc: `<SPObjects><SPObject Id=a/></SPObjects>`, class: ErrMalformed, at: "a/>"},
		{name: "attribute without value", doc: `<SPObjects><SPObject Id/></SPObjects>`, class: ErrMalformed, at: "/></SPObjects>"},
		{name: "unterminated comment", doc: `<SPObjects><!-- never closed </SPObjects>`, class: ErrMalformed, at: "\x00"},
		{name: "UTF-16 byte order mark", doc: "\xff\xfe<\x00S\x00", class: ErrMalformed, at: "\xff\xfe"},
		{name: "declared encoding", doc: `<?xml version="1.0" encoding="utf-16"?><SPObjects/>`, class: ErrMalformed, at: "<?xml"},
		{name: "unknown root", doc: `<Manifest/>`, class: ErrUnknownRoot, at: "<Manifest"},
		{name: "root in another namespace", doc: `<SPObjects xmlns="urn:deployment-usergroupmap-schema"/>`, class: ErrUnknownRoot, at: "<SPObjects"},
		{name: "malformed time", doc: `<SPObjects><SPObject Id="a" ObjectType="SPFile"><File TimeCreated="2023-13-11T05:19:48"/></SPObject></SPObjects>`, class: ErrInvalidValue, at: "2023-13"},
		{name: "February 30", doc: `<SPObjects><SPObject><File TimeCreated="2023-02-30T05:19:48"/></SPObject></SPObjects>`, class: ErrInvalidValue, at: "2023-02"},
		{name: "time with garbage", doc: `<SPObjects><SPObject><File TimeCreated="2023-01-30T05:19:48 PM"/></SPObject></SPObjects>`, class: ErrInvalidValue, at: "2023-01"},
		{name: "non-numeric size", doc: `<SPObjects><SPObject><File FileSize="12kB"/></SPObject></SPObjects>`, class: ErrInvalidValue, at: "12kB"},
		{name: "bad boolean", doc: `<UserGroupMap><Users><User Id="1" IsDeleted="maybe"/></Users></UserGroupMap>`, class: ErrInvalidValue, at: "maybe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := []byte(tt.doc)
			want := int64(bytes.Index(doc, []byte(tt.at)))
			if tt.at == "" {
				want = tt.off
			}
			if tt.at == "\x00" {
				want = int64(len(doc)) // end of input
			}
			if want < 0 {
				t.Fatalf("test bug: %q not in the document", tt.at)
			}
			_, err := parseAll(doc, tt.opts)
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, tt.class) {
				t.Fatalf("err = %v, want a *SyntaxError of class %v", err, tt.class)
			}
			if se.Offset != want {
				t.Errorf("offset %d, want %d: %v", se.Offset, want, err)
			}
			if se.Line < 1 {
				t.Errorf("line %d: %v", se.Line, err)
			}
			if tt.refMisses {
				return
			}
			opts := tt.opts
			opts.StdlibXML = true
			if _, err := parseAll(doc, opts); err == nil {
				t.Errorf("the encoding/xml reference accepted it")
			}
		})
	}
}

// TestSkippedContent checks that comments, processing instructions, CDATA and
// text between elements (such as the literal "…" of doc samples) are ignored.
func TestSkippedContent(t *testing.T) {
	doc := "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c --><?pi x?>\n" +
		`<SPObjects xmlns="urn:deployment-manifest-schema">…<!-- <SPObject Id="commented"/> -->` +
		`<![CDATA[<SPObject Id="cdata"/>]]><?target <SPObject Id="pi"/>?>` +
		`<SPObject Id="real" ObjectType="SPFile"><File Name="a &amp; b&#x20;&#233;&lt;&gt;&quot;&apos;" Url="x&#10;y	z"/>text &amp; more</SPObject>` +
		"</SPObjects>\n<!-- trailing comment -->\n"
	for _, size := range []int{16, 64, 1 << 10} { // small windows split every construct
		recs, err := parseAll([]byte(doc), Options{BufferSize: size})
		if err != nil {
			t.Fatalf("buffer %d: %v", size, err)
		}
		if len(recs) != 1 || recs[0].ObjectId != "real" {
			t.Fatalf("buffer %d: records %v", size, recs)
		}
		if f := recs[0].GetFile(); f.GetName() != `a & b é<>"'` || f.GetUrl() != "x\ny z" {
			t.Errorf("buffer %d: name %q url %q", size, f.GetName(), f.GetUrl())
		}
	}
}

func TestDecodeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"testlib_x002F_File_0905-1653-31240", "testlib/File_0905-1653-31240"},
		{"_x002F_", "/"},
		{"_x0031_.0", "1.0"},
		{"File_0905-1653-31240", "File_0905-1653-31240"},
		{"_X0041_", "A"},
		{"_x00e9__x00E9_", "éé"},
		{"_x0001F600_", "😀"},
		{"_xD83D__xDE00_", "😀"},
		{"_xD83D_x", "\uFFFD" + "x"},
		{"_xDE00_", "\uFFFD"},
		{"_x00110000_", "_x00110000_"},
		{"_x002F", "_x002F"},
		{"_x002G_", "_x002G_"},
		{"a_x005F_x0041_", "a_x0041_"},
	}
	for _, tt := range tests {
		if got := string(appendDecodedName(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("decode %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestEncodedAttributesOnlyListed checks that _xHHHH_ text is decoded only in
// the attributes EncodedAttributes names.
func TestEncodedAttributesOnlyListed(t *testing.T) {
	doc := `<SPObjects><SPObject><File Url="a_x002F_b" Name="c_x002F_d" CheckinComment="e_x002F_f" EncodedAttributes=" Url , CheckinComment"/></SPObject></SPObjects>`
	recs, err := parseAll([]byte(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := recs[0].GetFile()
	if f.GetUrl() != "a/b" || f.GetName() != "c_x002F_d" || f.GetCheckinComment() != "e/f" {
		t.Errorf("file = %v", f)
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339 in UTC, or "" for invalid
	}{
		{"2023-05-11T05:19:48", "2023-05-11T05:19:48Z"},
		{"2023-05-11T05:19:48Z", "2023-05-11T05:19:48Z"},
		{"2023-05-11T05:19:48.5", "2023-05-11T05:19:48.5Z"},
		{"2023-05-11T05:19:48.1234567Z", "2023-05-11T05:19:48.1234567Z"},
		{"2023-05-11T05:19:48.123456789123", "2023-05-11T05:19:48.123456789Z"},
		{"2023-05-11T05:19:48-07:00", "2023-05-11T12:19:48Z"},
		{"2024-02-29T00:00:00", "2024-02-29T00:00:00Z"},
		{"2023-02-29T00:00:00", ""},
		{"2023-05-11T24:00:00", ""},
		{"2023-05-11", ""},
		{"2023-05-11T05:19:48.", ""},
		{"2023-05-11T05:19:48+7", ""},
		{"12/04/2019 01:47:45", ""},
	}
	for _, tt := range tests {
		got, ok := parseTime(tt.in)
		if tt.want == "" {
			if ok {
				t.Errorf("parseTime(%q) = %v, want invalid", tt.in, got)
			}
			continue
		}
		want, _ := time.Parse(time.RFC3339Nano, tt.want)
		if !ok || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tt.in, got, ok, want)
		}
	}
}

// TestParseTimeMatchesTimeDate checks the day arithmetic against time.Date.
func TestParseTimeMatchesTimeDate(t *testing.T) {
	for _, y := range []int{1, 4, 100, 1600, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 9999} {
		for m := 1; m <= 12; m++ {
			for _, d := range []int{1, 15, 28, daysIn(time.Month(m), y)} {
				want := time.Date(y, time.Month(m), d, 23, 59, 58, 0, time.UTC)
				got, ok := parseTime(want.Format("2006-01-02T15:04:05"))
				if !ok || !got.Equal(want) {
					t.Fatalf("parseTime(%v) = %v, %v", want, got, ok)
				}
			}
		}
	}
}

// TestErrorIsSticky checks that a parser stays failed after an error.
func TestErrorIsSticky(t *testing.T) {
	p := NewParser(strings.NewReader(`<SPObjects><!DOCTYPE x></SPObjects>`), Options{})
	_, err1 := p.Next()
	_, err2 := p.Next()
	if err1 == nil || err1 != err2 || errors.Is(err1, io.EOF) {
		t.Errorf("errors %v, %v", err1, err2)
	}
}

func TestParseStops(t *testing.T) {
	doc := readFixture(t, "UserGroup.xml")
	stop := errors.New("stop")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		fn    func(*amrpipev1.Record) error
		want  error
		calls int
	}{
		{"callback error", context.Background(), func(r *amrpipev1.Record) error {
			if r.Sequence == 2 {
				return stop
			}
			return nil
		}, stop, 3},
		{"canceled context", canceled, func(*amrpipev1.Record) error { return nil }, context.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := Parse(tt.ctx, bytes.NewReader(doc), Options{SourceFile: "UserGroup.xml"}, func(r *amrpipev1.Record) error {
				calls++
				return tt.fn(r)
			})
			if !errors.Is(err, tt.want) || calls != tt.calls {
				t.Errorf("err = %v after %d calls, want %v after %d", err, calls, tt.want, tt.calls)
			}
		})
	}
}

// TestEncodedAttributesLongList checks that a huge EncodedAttributes list on
// an element with as many attributes is decoded in linear time.
func TestEncodedAttributesLongList(t *testing.T) {
	const n = 20000
	var names, attrs strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			names.WriteByte(',')
		}
		fmt.Fprintf(&names, "a%d", i)
		fmt.Fprintf(&attrs, ` a%d="_x0042_"`, i)
	}
	doc := `<SPObjects><SPObject><File EncodedAttributes="` + names.String() + `"` + attrs.String() + `/></SPObject></SPObjects>`
	recs, err := parseAll([]byte(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if extra := recs[0].GetFile().GetExtra(); len(extra) != n || extra["a19999"] != "B" {
		t.Errorf("%d extra attributes, a19999 = %q", len(extra), extra["a19999"])
	}
}

// TestHugeCollectionStopsAtTheDefaultBound feeds a RoleAssignment with two
// million Assignments (one used 643 MB before the bound): the parser refuses it
// at the default MaxChildren instead of collecting them all.
func TestHugeCollectionStopsAtTheDefaultBound(t *testing.T) {
	const head = `<SPObjects><SPObject ObjectType="DeploymentRoleAssignments"><RoleAssignments><RoleAssignment ScopeId="s">`
	const entry = `<Assignment RoleId="1073741829" PrincipalId="7"/>`
	const n = 2_000_000
	doc := io.MultiReader(strings.NewReader(head), &repeatReader{s: entry, n: n},
		strings.NewReader(`</RoleAssignment></RoleAssignments></SPObject></SPObjects>`))
	p := NewParser(doc, Options{})
	_, err := p.Next()
	var se *SyntaxError
	if !errors.As(err, &se) || !errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want a limit error", err)
	}
	if want := int64(len(head) + 100_000*len(entry)); se.Offset != want {
		t.Errorf("stopped at offset %d, want %d (the 100,001st assignment): %v", se.Offset, want, err)
	}
}

// repeatReader yields s n times without holding the result in memory.
type repeatReader struct {
	s   string
	n   int
	off int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	w := 0
	for w < len(b) && r.n > 0 {
		c := copy(b[w:], r.s[r.off:])
		w += c
		r.off += c
		if r.off == len(r.s) {
			r.off = 0
			r.n--
		}
	}
	if w == 0 {
		return 0, io.EOF
	}
	return w, nil
}
