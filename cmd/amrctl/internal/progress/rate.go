package progress

import (
	"fmt"
	"math"
	"strconv"
	"time"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// rateHalfLife is how fast a job's speed follows a change: a sample this old weighs half.
const rateHalfLife = 10 * time.Second

// rate is a job's objects per second, an exponentially weighted average over SharePoint's
// progress reports. It is timed by the records' Updated stamps, not by when the display saw
// them, so a snapshot that repeats a record (or arrives late) changes nothing.
type rate struct {
	perSecond float64
	at        time.Time
	objects   int64
}

// observe folds a record in. The first sample counts from the job's start when SharePoint
// reported one, since the objects before it were read since then.
func (r *rate) observe(rec *amrpipev1.JobRecord) {
	at, n := rec.GetUpdated().AsTime(), rec.GetObjectsProcessed()
	if r.at.IsZero() {
		if rec.GetStarted() != nil && n > 0 {
			r.at, r.objects = rec.GetStarted().AsTime(), 0
		} else {
			r.at, r.objects = at, n
			return
		}
	}
	dt := at.Sub(r.at)
	if dt <= 0 || n <= r.objects {
		return // the same report again, or no progress: the speed stays until progress resumes
	}
	inst := float64(n-r.objects) / dt.Seconds()
	if r.perSecond == 0 {
		r.perSecond = inst
	} else {
		w := 1 - math.Exp2(-dt.Seconds()/rateHalfLife.Seconds())
		r.perSecond += w * (inst - r.perSecond)
	}
	r.at, r.objects = at, n
}

// thousands writes n with comma separators: 1234567 → "1,234,567".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

// clock is a duration as m:ss, or h:mm:ss from an hour.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
