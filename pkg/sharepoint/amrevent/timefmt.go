package amrevent

import (
	"errors"
	"strings"
	"time"
)

// Accepted time layouts. Go accepts any fractional seconds after "05" when
// parsing, so each covers no fraction, ".fff" and .NET's 7-digit ".fffffff".
var timeLayouts = [...]string{
	"1/2/2006 15:04:05",         // what SharePoint sends: 12/04/2019 01:47:45.938
	"1/2/2006 3:04:05 PM",       // .NET en-US default rendering
	"2006-01-02T15:04:05",       // ISO without zone (the FinishManifestFileUpload doc example)
	"2006-01-02T15:04:05Z07:00", // ISO with Z or an offset
}

// tick is the precision of SharePoint's times (.NET ticks): seven fraction digits.
const tick = 100 * time.Nanosecond

// parseTime reads an event time; times without a zone are UTC. A time with more than seven
// fraction digits is cut to .NET's tick, the precision formatTime writes, so that an event
// decoded, encoded and decoded again keeps its time (and so its EventID).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC().Truncate(tick), nil
		}
	}
	return time.Time{}, errors.New("not a time in MM/dd/yyyy HH:mm:ss[.fff] or ISO 8601 form")
}

// formatTime renders t the way SharePoint does (UTC, milliseconds), with
// seven fraction digits when the time has sub-millisecond precision.
func formatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()%int(time.Millisecond) == 0 {
		return t.Format("01/02/2006 15:04:05.000")
	}
	return t.Format("01/02/2006 15:04:05.0000000")
}
