package spo

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzRetryAfter: whatever SharePoint (or a proxy in between) sends as Retry-After, the wait is
// never negative, never overflows, is exactly n seconds for a number that fits, saturates for
// one that does not, and a date is measured from the Date header.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "0", "-5", "9300000000", "18446744074", "99999999999999999999999", " 12 ", "soon",
		"Wed, 21 Oct 2099 07:28:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "1e3", "+5", ""} {
		f.Add(s, "Sat, 05 Dec 2026 00:00:00 GMT")
	}
	f.Fuzz(func(t *testing.T, retryAfter, date string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("Date", date)
		now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
		d, given := parseRetryAfter(h, now)
		if d < 0 {
			t.Fatalf("Retry-After %q: negative wait %s", retryAfter, d)
		}
		v := strings.TrimSpace(h.Get("Retry-After"))
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && !strings.HasPrefix(v, "+") {
			want := time.Duration(math.MaxInt64)
			if n <= uint64(math.MaxInt64/int64(time.Second)) {
				want = time.Duration(n) * time.Second
			}
			if !given || d != want {
				t.Fatalf("Retry-After %q: %s (given %v), want %s", v, d, given, want)
			}
		}
		if v == "" && (given || d != 0) {
			t.Fatalf("no Retry-After: %s, given %v", d, given)
		}
	})
}
