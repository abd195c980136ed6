package preflight

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

// Clock skew limits: SAS start and expiry times and token lifetimes are checked against the
// server's clock, so a skewed one breaks them; a few minutes already refuse fresh tokens.
const (
	SkewFail = 5 * time.Minute
	SkewWarn = time.Minute
)

// ClockSkew compares the local clock with the Date header of any answer from rawURL (an
// unauthenticated request: a 401 or 403 carries Date too).
func ClockSkew(ctx context.Context, check, rawURL string, now func() time.Time) Result {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, rawURL, nil)
	if err != nil {
		return Result{Check: check, Status: Fail, Detail: sas.Redact(err.Error())}
	}
	before := now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Result{Check: check, Status: Fail, Detail: "no answer: " + sas.Redact(err.Error()), Fix: "check that the host is reachable from here"}
	}
	if err := resp.Body.Close(); err != nil {
		return Result{Check: check, Status: Fail, Detail: err.Error()}
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return Result{Check: check, Status: Warn, Detail: "the answer has no Date header: cannot compare clocks"}
	}
	// The server stamped its Date between our send and our receipt: compare with the midpoint.
	local := before.Add(now().Sub(before) / 2)
	skew := local.Sub(date).Round(time.Second)
	abs := max(skew, -skew)
	detail := fmt.Sprintf("local clock is %s %s the server's", abs, map[bool]string{true: "ahead of", false: "behind"}[skew >= 0])
	fix := "synchronise this host's clock (chrony/systemd-timesyncd, or the hypervisor's time sync)"
	switch {
	case abs > SkewFail:
		return Result{Check: check, Status: Fail, Detail: detail + ": SAS start times and tokens break over 5 minutes", Fix: fix}
	case abs > SkewWarn:
		return Result{Check: check, Status: Warn, Detail: detail, Fix: fix}
	default:
		return Result{Check: check, Status: Pass, Detail: detail}
	}
}
