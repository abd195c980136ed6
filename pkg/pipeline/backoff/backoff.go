// Package backoff is the one back-off of the pipeline: how long to wait before the nth retry,
// and a sleep that ends with its context. The bus spaces a message's redeliveries with it, the
// SharePoint caller its in-call retries, and the stages their retries of a store write.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is exponential with equal jitter: between half and all of min(maxDelay, base·2ⁿ), so that
// retries spread out but never come back at once, and each waits at least half its step.
func Delay(base, maxDelay time.Duration, n int) time.Duration {
	d := base << min(max(n, 0), 30)
	if d <= 0 || d > maxDelay {
		d = maxDelay
	}
	half := d / 2
	if half <= 0 {
		return max(d, 0)
	}
	return half + time.Duration(rand.Int64N(int64(half)))
}

// Sleep waits for d or until ctx ends, and returns ctx's error in the latter case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
