package throttle_test

import (
	"context"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
)

func TestPausedUntil(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fc := &fakeClock{t: t0}
	kvA, kvB := replicaBudgets(t, fc)
	budgets := []struct {
		name          string
		pause, report interface {
			Pause(context.Context, string, time.Time) error
			PausedUntil(context.Context, string) (time.Time, error)
		}
	}{
		{"kv, seen by another replica", kvA, kvB},
		{"local", throttle.NewLocal(fc.clock()), nil},
	}
	for _, b := range budgets {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			report := b.report
			if report == nil {
				report = b.pause
			}
			host := "contoso.sharepoint.com"
			if until, err := report.PausedUntil(ctx, host); err != nil || !until.IsZero() {
				t.Fatalf("never paused: %v, %v", until, err)
			}
			want := t0.Add(42 * time.Second)
			if err := b.pause.Pause(ctx, host, want); err != nil {
				t.Fatal(err)
			}
			if until, err := report.PausedUntil(ctx, host); err != nil || !until.Equal(want) {
				t.Fatalf("PausedUntil = %v, %v; want %v", until, err, want)
			}
			if until, err := report.PausedUntil(ctx, "fabrikam.sharepoint.com"); err != nil || !until.IsZero() {
				t.Fatalf("another host: %v, %v", until, err)
			}
		})
	}
}
