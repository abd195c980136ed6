package cli

import (
	"time"
)

// parseSince reads a --since value: a duration back from now ("90m", "2h") or an RFC 3339 time.
// "" is the zero time (from the start).
func parseSince(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, usageErrorf("%s %q: a duration back from now is positive", flag, v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageErrorf("%s %q: want a duration (90m, 2h) or an RFC 3339 time (2026-05-01T12:00:00Z)", flag, v)
	}
	return t, nil
}
