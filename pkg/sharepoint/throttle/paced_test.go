package throttle_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
)

func TestPacedWait(t *testing.T) {
	const host = "contoso.sharepoint.com"
	tests := []struct {
		name         string
		pause        time.Duration // of host, from now
		wantSleeps   []time.Duration
		wantDeferred time.Duration // >0: a *LongPause of that length
	}{
		{name: "not paused", pause: 0},
		{name: "short pause is waited out", pause: 3 * time.Second, wantSleeps: []time.Duration{3 * time.Second}},
		{name: "pause of exactly MaxWait is waited out", pause: 10 * time.Second, wantSleeps: []time.Duration{10 * time.Second}},
		{name: "long pause is handed back", pause: 45 * time.Second, wantDeferred: 45 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			local := throttle.NewLocal(fc.clock())
			if tt.pause > 0 {
				if err := local.Pause(context.Background(), host, fc.t.Add(tt.pause)); err != nil {
					t.Fatal(err)
				}
			}
			type report struct {
				wait     time.Duration
				deferred bool
			}
			var reports []report
			p := throttle.NewPaced(local, throttle.PacedOptions{MaxWait: 10 * time.Second, Clock: fc.clock(),
				OnWait: func(h string, d time.Duration, deferred bool) { reports = append(reports, report{d, deferred}) }})
			err := p.Wait(context.Background(), host)
			var lp *throttle.LongPause
			switch {
			case tt.wantDeferred > 0:
				if !errors.As(err, &lp) || lp.Wait != tt.wantDeferred || lp.Host != host {
					t.Fatalf("Wait = %v, want a LongPause of %s", err, tt.wantDeferred)
				}
				if len(fc.sleeps) != 0 {
					t.Fatalf("slept %v before handing back", fc.sleeps)
				}
			case err != nil:
				t.Fatal(err)
			}
			if len(fc.sleeps) != len(tt.wantSleeps) || (len(tt.wantSleeps) > 0 && fc.sleeps[0] != tt.wantSleeps[0]) {
				t.Fatalf("sleeps = %v, want %v", fc.sleeps, tt.wantSleeps)
			}
			switch {
			case tt.wantDeferred > 0:
				if len(reports) != 1 || !reports[0].deferred || reports[0].wait != tt.wantDeferred {
					t.Fatalf("reports = %+v", reports)
				}
			case tt.pause > 0:
				if len(reports) != 1 || reports[0].deferred || reports[0].wait != tt.pause {
					t.Fatalf("reports = %+v", reports)
				}
			default:
				if len(reports) != 0 {
					t.Fatalf("reports = %+v for an unpaused host", reports)
				}
			}
		})
	}
}

func TestPacedWaitSeesAnotherReplicasPause(t *testing.T) {
	fc := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, b := replicaBudgets(t, fc)
	ctx := context.Background()
	if err := a.Pause(ctx, "127.0.0.1:8443", fc.t.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var lp *throttle.LongPause
	err := throttle.NewPaced(b, throttle.PacedOptions{MaxWait: time.Second, Clock: fc.clock()}).Wait(ctx, "127.0.0.1:8443")
	if !errors.As(err, &lp) || lp.Wait != time.Minute {
		t.Fatalf("Wait = %v, want a LongPause of 1m", err)
	}
}

func TestSlowDown(t *testing.T) {
	tests := []struct {
		name string
		rl   spo.RateLimit
		want time.Duration
	}{
		{name: "no headers", rl: spo.RateLimit{}},
		{name: "plenty left", rl: spo.RateLimit{Present: true, Limit: 1200, Remaining: 600, Reset: 30 * time.Second}},
		{name: "under a tenth: spread the rest", rl: spo.RateLimit{Present: true, Limit: 1200, Remaining: 59, Reset: 30 * time.Second}, want: 500 * time.Millisecond},
		{name: "none left: wait for the reset", rl: spo.RateLimit{Present: true, Limit: 1200, Remaining: 0, Reset: 9 * time.Second}, want: 9 * time.Second},
		{name: "no reset given", rl: spo.RateLimit{Present: true, Limit: 1200, Remaining: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := throttle.SlowDown(tt.rl, 0.1); got != tt.want {
				t.Fatalf("SlowDown = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPacedObservePausesTheHost(t *testing.T) {
	fc := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	local := throttle.NewLocal(fc.clock())
	p := throttle.NewPaced(local, throttle.PacedOptions{Clock: fc.clock()})
	low := spo.RateLimit{Present: true, Limit: 100, Remaining: 0, Reset: 4 * time.Second}
	p.Observe(spo.Observation{Host: "a.sharepoint.com", Status: http.StatusOK, RateLimit: low})
	p.Observe(spo.Observation{Host: "b.sharepoint.com", Status: http.StatusTooManyRequests, RateLimit: low}) // Do's job
	p.Observe(spo.Observation{Host: "c.sharepoint.com", Status: http.StatusOK})
	for host, want := range map[string]time.Duration{"a.sharepoint.com": 4 * time.Second, "b.sharepoint.com": 0, "c.sharepoint.com": 0} {
		until, _ := local.PausedUntil(context.Background(), host)
		got := time.Duration(0)
		if !until.IsZero() {
			got = until.Sub(fc.t)
		}
		if got != want {
			t.Errorf("%s paused for %s, want %s", host, got, want)
		}
	}
}
