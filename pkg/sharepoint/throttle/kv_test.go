package throttle_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// replicaBudgets returns two KV budgets on separate connections to one server, like two replicas,
// sharing the fake clock.
func replicaBudgets(t *testing.T, fc *fakeClock) (a, b *throttle.KV) {
	t.Helper()
	env := testenv.StartJetStream(t)
	budget := func() *throttle.KV {
		_, js := env.Connect(t)
		kv, err := js.KeyValue(context.Background(), topology.BucketThrottle)
		if err != nil {
			t.Fatal(err)
		}
		return throttle.NewKV(kv, fc.clock())
	}
	return budget(), budget()
}

func TestKVPauseHoldsOtherReplicas(t *testing.T) {
	tests := []struct {
		name   string
		host   string
		pauses []time.Duration // through replica A, in order
		want   []time.Duration // replica B's sleeps
	}{
		{name: "one pause", host: "contoso.sharepoint.com", pauses: []time.Duration{5 * time.Second}, want: []time.Duration{5 * time.Second}},
		{name: "an earlier pause does not shorten it", host: "contoso.sharepoint.com",
			pauses: []time.Duration{5 * time.Second, time.Second}, want: []time.Duration{5 * time.Second}},
		{name: "a later pause extends it", host: "contoso.sharepoint.com",
			pauses: []time.Duration{2 * time.Second, 9 * time.Second}, want: []time.Duration{9 * time.Second}},
		{name: "host with a port", host: "127.0.0.1:8443", pauses: []time.Duration{3 * time.Second}, want: []time.Duration{3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			a, b := replicaBudgets(t, fc)
			ctx := context.Background()
			start := fc.t
			for _, p := range tt.pauses {
				if err := a.Pause(ctx, tt.host, start.Add(p)); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Wait(ctx, "other.sharepoint.com"); err != nil || len(fc.sleeps) != 0 {
				t.Fatalf("another host waited: %v %v", err, fc.sleeps)
			}
			if err := b.Wait(ctx, tt.host); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(fc.sleeps) != fmt.Sprint(tt.want) {
				t.Fatalf("replica B slept %v, want %v", fc.sleeps, tt.want)
			}
		})
	}
}

// TestKVConcurrentPausesKeepTheLatest: replicas throttled at once; the longest pause wins.
func TestKVConcurrentPausesKeepTheLatest(t *testing.T) {
	t.Parallel()
	fc := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, b := replicaBudgets(t, fc)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			budget := a
			if i%2 == 1 {
				budget = b
			}
			if err := budget.Pause(ctx, "contoso.sharepoint.com", fc.t.Add(time.Duration(i+1)*time.Second)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := a.Wait(ctx, "contoso.sharepoint.com"); err != nil {
		t.Fatal(err)
	}
	if len(fc.sleeps) != 1 || fc.sleeps[0] != 10*time.Second {
		t.Fatalf("slept %v, want [10s]", fc.sleeps)
	}
}

// TestKVDoSharesRetryAfter: a 429 seen by replica A through Do makes replica B's Do wait.
func TestKVDoSharesRetryAfter(t *testing.T) {
	t.Parallel()
	fc := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, b := replicaBudgets(t, fc)
	ctx := context.Background()
	p := throttle.DefaultPolicy(stage.Judge)
	p.Clock = fc.clock()
	calls := 0
	if _, err := throttle.Do(ctx, a, "contoso.sharepoint.com", p, func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, &spo.Error{Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second}
		}
		return 0, nil
	}); err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	fc.t, fc.sleeps = fc.t.Add(-30*time.Second), nil // replica B asks at the moment of the 429
	fc.mu.Unlock()
	if _, err := throttle.Do(ctx, b, "contoso.sharepoint.com", p, func(context.Context) (int, error) { return 0, nil }); err != nil {
		t.Fatal(err)
	}
	if len(fc.sleeps) != 1 || fc.sleeps[0] != 30*time.Second {
		t.Fatalf("replica B slept %v, want [30s]", fc.sleeps)
	}
}

// TestParsePauseReadsWhatPauseWrote: every entry Pause stores reads back as its host and time,
// whatever the host's characters; entries of someone else's making are refused.
func TestParsePauseReadsWhatPauseWrote(t *testing.T) {
	env := testenv.StartJetStream(t)
	kv := env.KV(t, topology.BucketThrottle)
	b := throttle.NewKV(kv, throttle.Clock{})
	until := time.Date(2026, 12, 5, 14, 0, 0, 123, time.UTC)
	ctx := context.Background()
	tests := []struct{ host, key string }{
		{"contoso.sharepoint.com", "contoso.sharepoint.com"},
		{"127.0.0.1:8443", "b64=MTI3LjAuMC4xOjg0NDM"},
		{"[::1]:443", "b64=Wzo6MV06NDQz"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if err := b.Pause(ctx, tt.host, until); err != nil {
				t.Fatal(err)
			}
			e, err := kv.Get(ctx, tt.key)
			if err != nil {
				t.Fatalf("entry %s: %v", tt.key, err)
			}
			host, got, ok := throttle.ParsePause(e.Key(), e.Value())
			if !ok || host != tt.host || !got.Equal(until) {
				t.Errorf("ParsePause = %q, %v, %v; want %q, %v", host, got, ok, tt.host, until)
			}
		})
	}
	for _, bad := range []struct{ key, value string }{{"b64=%%%", "2026-12-05T14:00:00Z"}, {"host", "soon"}} {
		if _, _, ok := throttle.ParsePause(bad.key, []byte(bad.value)); ok {
			t.Errorf("ParsePause(%q, %q) accepted", bad.key, bad.value)
		}
	}
}
