package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
)

func TestDelayStaysInItsStep(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
		n         int
		lo, hi    time.Duration
	}{
		{"first", time.Second, time.Minute, 0, 500 * time.Millisecond, time.Second},
		{"third", time.Second, time.Minute, 2, 2 * time.Second, 4 * time.Second},
		{"capped", time.Second, 10 * time.Second, 8, 5 * time.Second, 10 * time.Second},
		{"huge n does not overflow", time.Second, time.Hour, 1 << 20, 30 * time.Minute, time.Hour},
		{"negative n is the first", time.Second, time.Minute, -3, 500 * time.Millisecond, time.Second},
		{"zero", 0, 0, 4, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				d := backoff.Delay(tt.base, tt.max, tt.n)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("Delay = %s, want within [%s, %s]", d, tt.lo, tt.hi)
				}
			}
		})
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := backoff.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
	if err := backoff.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestRetryUntilItWorks(t *testing.T) {
	calls, heard := 0, 0
	err := backoff.Retry(context.Background(), time.Millisecond, 2*time.Millisecond, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("away")
		}
		return nil
	}, func(error, time.Duration) { heard++ })
	if err != nil || calls != 3 || heard != 2 {
		t.Fatalf("Retry = %v after %d calls, %d failures heard; want nil after 3, 2", err, calls, heard)
	}
}

func TestRetryEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	away := errors.New("away")
	err := backoff.Retry(ctx, time.Millisecond, 5*time.Millisecond, func(context.Context) error { return away }, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, away) {
		t.Fatalf("Retry = %v, want the context's end and the last failure", err)
	}
}
