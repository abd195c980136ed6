package throttle_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// fakeClock advances only when something sleeps, and records every sleep.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) clock() throttle.Clock {
	return throttle.Clock{
		Now: func() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t },
		Sleep: func(_ context.Context, d time.Duration) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.sleeps = append(c.sleeps, d)
			c.t = c.t.Add(d)
			return nil
		},
	}
}

func TestDo(t *testing.T) {
	throttled := func(after time.Duration) error {
		return &spo.Error{Status: http.StatusTooManyRequests, RetryAfter: after}
	}
	serverError := &spo.Error{Status: http.StatusInternalServerError, Code: -2147213145}
	transient := &spo.Error{Status: http.StatusBadGateway}
	tests := []struct {
		name       string
		errs       []error // one per attempt; nil ends in success
		wantCalls  int
		wantErr    bool
		wantIs     error           // the error must match this sentinel
		wantSleeps []time.Duration // exact sleeps (throttling only; backoff is random)
	}{
		{name: "success first time", errs: []error{nil}, wantCalls: 1},
		{name: "429 waits its Retry-After then succeeds", errs: []error{throttled(3 * time.Second), throttled(2 * time.Second), nil},
			wantCalls: 3, wantSleeps: []time.Duration{3 * time.Second, 2 * time.Second}},
		{name: "503 without Retry-After waits the default", errs: []error{&spo.Error{Status: http.StatusServiceUnavailable}, nil},
			wantCalls: 2, wantSleeps: []time.Duration{10 * time.Second}},
		{name: "500 is never retried", errs: []error{serverError, nil}, wantCalls: 1, wantErr: true, wantIs: spo.ErrJobNotFound},
		{name: "transient failures give up after MaxRetries", errs: []error{transient, transient, transient, transient}, wantCalls: 3, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			b := throttle.NewLocal(fc.clock())
			p := throttle.DefaultPolicy(stage.Judge)
			p.MaxRetries = 2
			p.Clock = fc.clock()
			calls := 0
			_, err := throttle.Do(context.Background(), b, "contoso.sharepoint.com", p, func(context.Context) (int, error) {
				err := tt.errs[calls]
				calls++
				return calls, err
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Fatalf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if tt.wantSleeps != nil {
				if len(fc.sleeps) != len(tt.wantSleeps) {
					t.Fatalf("sleeps = %v, want %v", fc.sleeps, tt.wantSleeps)
				}
				for i := range fc.sleeps {
					if fc.sleeps[i] != tt.wantSleeps[i] {
						t.Fatalf("sleeps = %v, want %v", fc.sleeps, tt.wantSleeps)
					}
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("err %v does not match %v", err, tt.wantIs)
			}
		})
	}
}

func TestPauseHoldsEveryCallerOfTheHost(t *testing.T) {
	fc := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := throttle.NewLocal(fc.clock())
	ctx := context.Background()
	if err := b.Pause(ctx, "a.example", fc.t.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// An earlier pause must not shorten the one in force.
	if err := b.Pause(ctx, "a.example", fc.t.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx, "b.example"); err != nil || len(fc.sleeps) != 0 {
		t.Fatalf("another host waited: %v %v", err, fc.sleeps)
	}
	if err := b.Wait(ctx, "a.example"); err != nil {
		t.Fatal(err)
	}
	if len(fc.sleeps) != 1 || fc.sleeps[0] != 5*time.Second {
		t.Fatalf("sleeps = %v, want [5s]", fc.sleeps)
	}
}
