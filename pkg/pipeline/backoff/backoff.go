// Package backoff is the one back-off of the pipeline: how long to wait before the nth retry,
// a sleep that ends with its context, and a loop that retries until something works. The bus
// spaces a message's redeliveries with it, the SharePoint caller its in-call retries, the stages
// their retries of a store write, and a service its start while NATS is away.
package backoff

import (
	"context"
	"fmt"
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

// Retry runs fn until it returns nil or ctx ends, waiting Delay(base, maxDelay, n) after the nth
// failure; failed, if not nil, hears of each failure and the wait before the next try. When ctx
// ends it returns ctx's error joined with fn's last.
func Retry(ctx context.Context, base, maxDelay time.Duration, fn func(context.Context) error, failed func(err error, wait time.Duration)) error {
	for n := 0; ; n++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		wait := Delay(base, maxDelay, n)
		if failed != nil {
			failed(err, wait)
		}
		if serr := Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (last: %w)", serr, err)
		}
	}
}
