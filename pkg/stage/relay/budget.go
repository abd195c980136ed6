package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
)

// pauseReader is a budget that can say how long a host is paused (throttle.KV and throttle.Local).
type pauseReader interface {
	PausedUntil(ctx context.Context, host string) (time.Time, error)
}

// yieldingBudget waits through short throttling pauses like any budget, but hands a long one back
// as bus.Throttled with the remaining pause, so the poll's message returns to JetStream (Nak with
// that delay, not counted as a failure) instead of holding a worker that other tenants' jobs need.
type yieldingBudget struct {
	throttle.Budget
	maxWait time.Duration
	now     func() time.Time
}

// Wait implements throttle.Budget.
func (b yieldingBudget) Wait(ctx context.Context, host string) error {
	if pr, ok := b.Budget.(pauseReader); ok {
		until, err := pr.PausedUntil(ctx, host)
		if err != nil {
			return err
		}
		if left := until.Sub(b.now()); left > b.maxWait {
			return &bus.Throttled{RetryAfter: left, Err: fmt.Errorf("calls to %s paused for %s (Retry-After)", host, left.Round(time.Millisecond))}
		}
	}
	return b.Budget.Wait(ctx, host)
}
