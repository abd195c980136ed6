package export

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeName is the test's own XmlConvert.DecodeName: _xHHHH_ and _xHHHHHHHH_ (either case of x and
// of the hex digits) become the character they name; everything else is copied.
func decodeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if n, r, ok := escapeAt(s[i:]); ok {
			b.WriteRune(r)
			i += n
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// escapeAt parses an _xHHHH_ or _xHHHHHHHH_ escape at the start of s.
func escapeAt(s string) (n int, r rune, ok bool) {
	if len(s) < 7 || s[0] != '_' || (s[1] != 'x' && s[1] != 'X') {
		return 0, 0, false
	}
	for _, digits := range []int{8, 4} {
		if len(s) < digits+3 || s[digits+2] != '_' {
			continue
		}
		v, err := strconv.ParseUint(s[2:2+digits], 16, 32)
		if err != nil {
			continue
		}
		return digits + 3, rune(v), true
	}
	return 0, 0, false
}

func TestEncodeName(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"plain name unchanged", "File_0905-1653-31240", "File_0905-1653-31240"},
		{"slash (AMR sample Url)", "testlib/File_0905-1653-31240", "testlib_x002F_File_0905-1653-31240"},
		{"root web url (AMR sample ParentWebUrl)", "/", "_x002F_"},
		{"leading digit (AMR sample Version)", "1.0", "_x0031_.0"},
		{"digits after the first character stay", "v10.25", "v10.25"},
		{"space", "Shared Documents", "Shared_x0020_Documents"},
		{"leading dot and hyphen", ".-x", "_x002E_-x"},
		{"colon is a name character", ":a:b", ":a:b"},
		{"underscore before an escape-like sequence", "_x0041_", "_x005F_x0041_"},
		{"upper-case X and hex", "a_X00fF_", "a_x005F_X00fF_"},
		{"underscore before an 8-digit escape-like sequence", "_x0001F600_", "_x005F_x0001F600_"},
		{"underscore not followed by a full sequence", "_x004", "_x004"},
		{"underscore before hex and an escaped character (.NET would not round-trip)", "_X0000 000", "_x005F_X0000_x0020_000"},
		{"underscore before eight hex digits and an escaped character", "_x00410042/", "_x005F_x00410042_x002F_"},
		{"underscore before five hex digits and an escaped character", "_x00411/", "_x00411_x002F_"},
		{"underscore followed by non-hex", "_x00G1_", "_x00G1_"},
		{"C0 control", "a\x01b", "a_x0001_b"},
		{"tab and newline", "a\tb\n", "a_x0009_b_x000A_"},
		{"U+FFFE", "a\uFFFEb", "a_xFFFE_b"},
		{"emoji outside the BMP", "a😀", "a_x0001F600_"},
		{"emoji first", "😀", "_x0001F600_"},
		{"letter outside Appendix B stays escaped", "a\u0221", "a_x0221_"},
		{"Latin letter with accent stays", "café", "café"},
		{"CJK ideograph stays", "文書", "文書"},
		{"combining mark is not a start character", "\u0301a", "_x0301_a"},
		{"combining mark later stays", "a\u0301", "a\u0301"},
		{"ampersand and quote", `a&b"c`, "a_x0026_b_x0022_c"},
		{"invalid UTF-8 becomes U+FFFD", "a\xffb", "a_xFFFD_b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EncodeName(tt.in); got != tt.want {
				t.Errorf("EncodeName(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(tt.in) {
				return
			}
			if got := decodeName(tt.want); got != tt.in {
				t.Errorf("decodeName(%q) = %q, want %q", tt.want, got, tt.in)
			}
		})
	}
}

// FuzzEncodeName checks that decoding undoes encoding for valid UTF-8 and that a non-empty encoded
// string is an XML name (checked with encoding/xml, which has its own copy of Appendix B).
func FuzzEncodeName(f *testing.F) {
	for _, s := range []string{"", "a", "1.0", "/", "_x0041_", "_x0001F600_x", "a\x01😀", "\uFFFE", "__x1234_", "a b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		enc := EncodeName(s)
		if dec := decodeName(enc); dec != s {
			t.Fatalf("decodeName(EncodeName(%q)) = %q (encoded %q)", s, dec, enc)
		}
		if enc == "" || strings.Contains(enc, ":") {
			return // encoding/xml splits prefixes at ':'
		}
		d := xml.NewDecoder(strings.NewReader("<" + enc + "/>"))
		for {
			_, err := d.Token()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("EncodeName(%q) = %q is not an XML name: %v", s, enc, err)
				}
				return
			}
		}
	})
}
