package progress

import (
	"strings"
	"testing"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestLabelNamesTheSite: libraries of the same name on different sites get different labels, a
// long path keeps its site and its end, and every label has the same width so rows line up.
func TestLabelNamesTheSite(t *testing.T) {
	for _, tc := range []struct {
		site string
		urls []string
		want string
	}{
		{"https://t/sites/hr", []string{"https://t/sites/hr/Shared Documents"}, "job         hr › Shared Documents"},
		{"https://t/sites/eng", []string{"https://t/sites/eng/Shared Documents"}, "job         eng › Shared Documents"},
		{"https://t/sites/archive", []string{"https://t/sites/archive/Lists/Retention%20Schedule/Year%202019/Quarter%204"},
			"job         archive › …edule/Year 2019/Quarter 4"},
		{"https://t/sites/a", []string{"https://t/sites/a/Docs/f1", "https://t/sites/a/Docs/f2"}, "multi×2     a › Docs/f1"},
		{"", []string{"https://t/Shared Documents"}, "job         Shared Documents"},
		{"https://t/sites/hr", nil, "job         -"},
	} {
		rec := &amrpipev1.JobRecord{Spec: &amrpipev1.JobSpec{SiteUrl: tc.site, Urls: tc.urls, Multi: len(tc.urls) > 1}}
		got := Label(rec)
		if strings.TrimRight(got, " ") != tc.want {
			t.Errorf("Label(%s %v) = %q, want %q", tc.site, tc.urls, got, tc.want)
		}
		if n := len([]rune(got)); n != labelWidth {
			t.Errorf("Label(%s %v) is %d runes wide, want %d", tc.site, tc.urls, n, labelWidth)
		}
	}
}
