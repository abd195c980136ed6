package spo

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit is what SharePoint's RateLimit-* headers said. SharePoint sends them on some
// responses once an app nears its quota, so a caller can slow down before it is throttled.
type RateLimit struct {
	Present   bool          // at least one RateLimit-* header was sent
	Limit     int64         // RateLimit-Limit: the quota of the current window
	Remaining int64         // RateLimit-Remaining: what is left of it
	Reset     time.Duration // RateLimit-Reset: seconds until the window resets
}

func parseRateLimit(h http.Header) RateLimit {
	var rl RateLimit
	if v, ok := headerInt(h, "RateLimit-Limit"); ok {
		rl.Present, rl.Limit = true, v
	}
	if v, ok := headerInt(h, "RateLimit-Remaining"); ok {
		rl.Present, rl.Remaining = true, v
	}
	if v, ok := headerInt(h, "RateLimit-Reset"); ok {
		rl.Present, rl.Reset = true, time.Duration(v)*time.Second
	}
	return rl
}

func headerInt(h http.Header, name string) (int64, bool) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date, and reports whether the
// header was there and readable. A date is measured from the response's Date header when present,
// so a skewed local clock does not distort it. Huge values saturate (the caller caps them) rather
// than overflow.
func parseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) && strings.Trim(v, "0123456789") == "" {
		if err != nil || n > uint64(math.MaxInt64/int64(time.Second)) {
			return math.MaxInt64, true
		}
		return time.Duration(n) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		now = d
	}
	return max(at.Sub(now), 0), true
}
