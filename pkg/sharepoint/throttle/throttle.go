// Package throttle paces calls to SharePoint per tenant host. A 429/503 Retry-After pauses every
// call to that host (not just the one that was throttled), as Microsoft's guidance asks, and the
// pause is held in a Budget that all replicas of a service can share.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
)

// Budget is the per-host throttling state shared by the callers of one tenant.
type Budget interface {
	// Wait blocks until calls to host may proceed or ctx ends.
	Wait(ctx context.Context, host string) error
	// Pause stops calls to host until the given time; a later pause in force is kept.
	Pause(ctx context.Context, host string, until time.Time) error
}

// Local is a Budget held in process memory: for one replica, the CLI and tests. Services use the
// JetStream-backed budget so that every replica sees a pause.
type Local struct {
	mu    sync.Mutex
	until map[string]time.Time
	clock Clock
}

// Clock is the time source of a budget or policy; the zero Clock is the real one.
type Clock struct {
	Now   func() time.Time
	Sleep func(context.Context, time.Duration) error
}

func (c Clock) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c Clock) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep == nil {
		return backoff.Sleep(ctx, d)
	}
	return c.Sleep(ctx, d)
}

// NewLocal returns an empty in-process budget on the given clock (the zero Clock is the real one).
func NewLocal(c Clock) *Local {
	return &Local{until: map[string]time.Time{}, clock: c}
}

// Wait implements Budget.
func (l *Local) Wait(ctx context.Context, host string) error {
	for {
		l.mu.Lock()
		d := l.until[host].Sub(l.clock.now())
		l.mu.Unlock()
		if d <= 0 {
			return ctx.Err()
		}
		if err := l.clock.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// Pause implements Budget.
func (l *Local) Pause(_ context.Context, host string, until time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.until[host]) {
		l.until[host] = until
	}
	return nil
}

// Outcome is what Do makes of a failed call: Judge's answer.
type Outcome int

const (
	// GiveUp returns the error to the caller at once.
	GiveUp Outcome = iota
	// Retry tries again after a back-off, up to MaxRetries times.
	Retry
	// Throttled pauses the host for the wait (every caller of the host waits) and tries again
	// for as long as ctx allows: Microsoft asks callers to wait, not to give up.
	Throttled
)

// Policy says how Do retries.
type Policy struct {
	// Judge says what an error means (and, for Throttled, how long SharePoint asked to wait: 0
	// when it did not say). It is the caller's one translation of errors; required.
	Judge func(error) (Outcome, time.Duration)
	// MaxRetries bounds retries of Retry outcomes.
	MaxRetries int
	// BaseDelay and MaxDelay shape the back-off of retries (pkg/pipeline/backoff).
	BaseDelay, MaxDelay time.Duration
	// DefaultRetryAfter is used when a throttled answer carries no Retry-After.
	DefaultRetryAfter time.Duration
	Clock             Clock
}

// DefaultPolicy is a sensible policy for SharePoint calls, given the caller's Judge.
func DefaultPolicy(judge func(error) (Outcome, time.Duration)) Policy {
	return Policy{Judge: judge, MaxRetries: 5, BaseDelay: 500 * time.Millisecond, MaxDelay: 30 * time.Second, DefaultRetryAfter: 10 * time.Second}
}

// ErrGaveUp wraps the last error when retryable failures exhausted MaxRetries.
var ErrGaveUp = errors.New("gave up after retries")

// Do calls fn for host, waiting on the budget before each attempt, and acts on each failure as
// p.Judge says: a throttled answer pauses the host in the budget for its Retry-After (so every
// caller waits) and is retried; a retryable failure is retried with back-off up to MaxRetries;
// anything else is returned at once.
func Do[T any](ctx context.Context, b Budget, host string, p Policy, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	retries := 0
	for {
		if err := b.Wait(ctx, host); err != nil {
			return zero, err
		}
		v, err := fn(ctx)
		if err == nil {
			return v, nil
		}
		outcome, wait := p.Judge(err)
		switch outcome {
		case Throttled:
			if wait <= 0 {
				wait = p.DefaultRetryAfter
			}
			if perr := b.Pause(ctx, host, p.Clock.now().Add(wait)); perr != nil {
				return zero, fmt.Errorf("record throttling of %s: %w", host, perr)
			}
		case Retry:
			if retries >= p.MaxRetries {
				return zero, fmt.Errorf("%w (%d): %w", ErrGaveUp, retries, err)
			}
			if serr := p.Clock.sleep(ctx, backoff.Delay(p.BaseDelay, p.MaxDelay, retries)); serr != nil {
				return zero, serr
			}
			retries++
		default:
			return zero, err
		}
	}
}
