package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// chunk is what the tests write: after one is refused, none fits.
var chunk = make([]byte, 512)

// fullStream creates a stream of about 4 KB that refuses new messages when full, as the
// topology's streams do, and fills it.
func fullStream(t *testing.T, env *testenv.JetStream) (jetstream.Stream, string) {
	t.Helper()
	n := streamCounter.Add(1)
	name, subject := fmt.Sprintf("FULL%d", n), fmt.Sprintf("full%d.x", n)
	ctx := context.Background()
	s, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject},
		MaxBytes: 4 << 10, Discard: jetstream.DiscardNew})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := env.JS.Publish(ctx, subject, chunk); err != nil {
			if !bus.Full(err) {
				t.Fatalf("publish %d into a full stream: %v, not recognised as full", i, err)
			}
			return s, subject
		}
		if i > 100 {
			t.Fatal("a 4 KB stream took 50 KB")
		}
	}
}

// TestFullStoreIsThrottled: every way a write meets a full store (a publish, an asynchronous
// publish's acknowledgement, a key-value write), and JetStream being unavailable while a leader
// is elected, is recognised and judged throttled back-pressure, whatever wraps it; other
// JetStream errors are not.
func TestFullStoreIsThrottled(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	_, subject := fullStream(t, env)

	_, pubErr := env.JS.Publish(ctx, subject, chunk)

	p := bus.NewAsyncPublisher(env.JS, bus.AsyncOptions{})
	defer func() { _ = p.Close(ctx) }()
	if err := p.Publish(ctx, subject, &amrpipev1.PlanRequest{PlanId: string(chunk)}, "async-1"); err != nil {
		t.Fatal(err)
	}
	asyncErr := p.Flush(ctx)

	kv, err := env.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "full_kv", MaxBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var kvErr error
	for i := 0; kvErr == nil && i < 100; i++ {
		_, kvErr = kv.Put(ctx, fmt.Sprintf("k%d", i), make([]byte, 256))
	}

	_, otherErr := env.JS.Publish(ctx, "no.stream.takes.this", nil)
	_, missing := env.JS.Stream(ctx, "NOPE")

	tests := []struct {
		name              string
		err               error
		full, unavailable bool
	}{
		{"publish", pubErr, true, false},
		{"async publish, wrapped as the parser does", &bus.Retryable{Err: fmt.Errorf("records of Manifest.xml: %w", asyncErr)}, true, false},
		{"key-value put", fmt.Errorf("store job: %w", kvErr), true, false},
		// What a publish meets while a stream's leader is being elected.
		{"no stream answers", otherErr, false, true},
		{"no responders", fmt.Errorf("get job: %w", nats.ErrNoResponders), false, true},
		{"cluster temporarily unavailable", fmt.Errorf("purge: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008}), false, true},
		{"cluster temporarily unavailable, older API", fmt.Errorf("open object: %w", &nats.APIError{Code: 503, ErrorCode: 10008}), false, true},
		{"stream not found", missing, false, false},
		{"a timeout says nothing of whose fault it was", fmt.Errorf("publish: %w", context.DeadlineExceeded), false, false},
		{"plain error", errors.New("maximum bytes exceeded"), false, false}, // only JetStream's own answer counts
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error to judge")
			}
			if got := bus.Full(tt.err); got != tt.full {
				t.Fatalf("Full(%v) = %v, want %v", tt.err, got, tt.full)
			}
			if got := bus.Unavailable(tt.err); got != tt.unavailable {
				t.Fatalf("Unavailable(%v) = %v, want %v", tt.err, got, tt.unavailable)
			}
			v := bus.Classify(tt.err)
			if back := tt.full || tt.unavailable; back != (v.Class == bus.ClassThrottled && v.Backpressure) {
				t.Fatalf("Classify(%v) = %+v, want back-pressure %v", tt.err, v, back)
			}
		})
	}
	if v := bus.Classify(&bus.Permanent{Reason: "bad", Err: pubErr}); v.Class != bus.ClassPermanent {
		t.Fatalf("a permanent failure caused by a full store = %+v, want permanent", v)
	}
}

// TestHandlerWaitsOutAFullStore: a handler whose publish meets a full stream is handed back,
// never counted (one allowed failure, a throttle budget long spent) nor dead-lettered, and
// succeeds once a reader made room.
func TestHandlerWaitsOutAFullStore(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	full, subject := fullStream(t, env)
	ctx := context.Background()
	record, deliveries := recordingHandler(0, nil)
	published := make(chan struct{})
	handler := func(ctx context.Context, msg jetstream.Msg) error {
		if err := record(ctx, msg); err != nil {
			return err
		}
		if _, err := env.JS.Publish(ctx, subject, chunk); err != nil {
			return &bus.Retryable{Err: fmt.Errorf("publish output: %w", err)}
		}
		close(published)
		return nil
	}
	o := h.options(t)
	o.Concurrency = 1
	o.MaxFailures = 1
	o.ThrottleBudget = time.Nanosecond
	reg := prometheus.NewRegistry()
	m, err := bus.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	o.Metrics = m
	h.publish(t, ctx, "p1")
	h.run(t, handler, o)
	waitFor(t, 20*time.Second, func() bool { return len(deliveries()) >= 3 })
	select {
	case <-published:
		t.Fatal("published into a full stream")
	default:
	}
	if err := full.Purge(ctx); err != nil { // a downstream reader made room
		t.Fatal(err)
	}
	select {
	case <-published:
	case <-time.After(time.Minute):
		t.Fatal("the handler did not resume after room was made")
	}
	h.settled(t)
	if h.hasDeadLetter(t) {
		t.Fatal("a message that waited for a full stream was dead-lettered")
	}
	want := fmt.Sprintf(`
# HELP amr_stage_messages_total Messages settled by a stage, by outcome.
# TYPE amr_stage_messages_total counter
amr_stage_messages_total{outcome="ack",stage=%[1]q} 1
amr_stage_messages_total{outcome="throttled",stage=%[1]q} %[2]d
`, h.stage, len(deliveries())-1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "amr_stage_messages_total"); err != nil {
		t.Error(err)
	}
	got := deliveries()
	for i := 1; i < len(got); i++ {
		if gap := got[i].at.Sub(got[i-1].at); gap < bus.BackpressureBase/2*9/10 {
			t.Errorf("try %d came %s after the previous, want at least %s", i+1, gap, bus.BackpressureBase/2)
		}
	}
}
