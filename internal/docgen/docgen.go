// Package docgen keeps the generated sections of the documentation (a service's flag table, the
// stage table, the job lifecycle diagram) equal to the code they are drawn from: a test compares
// the section between two markers with what the code says and, run with -update, rewrites it.
package docgen

import (
	"os"
	"strings"
	"testing"
)

// Section checks that the text between the markers begin and end of the file at path is body.
// With update it rewrites the file instead; otherwise a difference fails tb with how to fix it.
func Section(tb testing.TB, path, begin, end, body string, update bool, fix string) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		tb.Fatalf("%s has no generated section (markers %q … %q)", path, begin, end)
	}
	want := s[:i+len(begin)] + body + s[j:]
	if want == s {
		return
	}
	if update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	tb.Errorf("%s: the generated section differs from the code; run %s", path, fix)
}
