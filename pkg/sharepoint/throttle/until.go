package throttle

import (
	"context"
	"fmt"
	"time"
)

// PausedUntil returns when calls to host may resume (the zero time, or a past one, when they may
// now). A stage that must not hold a worker through a long pause (the progress-relay hands the
// message back to JetStream instead) asks this before it waits.
func (b *KV) PausedUntil(ctx context.Context, host string) (time.Time, error) {
	until, _, err := b.get(ctx, hostKey(host))
	if err != nil {
		return time.Time{}, fmt.Errorf("throttling budget of %s: %w", host, err)
	}
	return until, nil
}

// PausedUntil implements the same query for the in-process budget.
func (l *Local) PausedUntil(_ context.Context, host string) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until[host], nil
}
