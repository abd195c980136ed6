package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// harness is one embedded server with the topology, plus a test stream and consumer of its own
// (the pipeline's work-queue streams allow only their own consumer).
type harness struct {
	env     *testenv.JetStream
	cons    jetstream.Consumer
	stream  string
	subject string
	stage   string
}

var streamCounter atomic.Int64

func newHarness(t *testing.T, env *testenv.JetStream, ackWait time.Duration) *harness {
	t.Helper()
	n := streamCounter.Add(1)
	h := &harness{env: env, stream: fmt.Sprintf("TEST%d", n), subject: fmt.Sprintf("test%d.in", n), stage: fmt.Sprintf("stage%d", n)}
	ctx := context.Background()
	if _, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name: h.stream, Subjects: []string{fmt.Sprintf("test%d.>", n)},
	}); err != nil {
		t.Fatal(err)
	}
	cons, err := env.JS.CreateOrUpdateConsumer(ctx, h.stream, jetstream.ConsumerConfig{
		Durable: "c", FilterSubject: h.subject, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.cons = cons
	return h
}

func (h *harness) options(t *testing.T) bus.ConsumeOptions {
	return bus.ConsumeOptions{
		Stage: h.stage, JS: h.env.JS, Concurrency: 2, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		BaseDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond, DrainTimeout: 2 * time.Second,
	}
}

func (h *harness) publish(t *testing.T, ctx context.Context, planID string) {
	t.Helper()
	if _, err := bus.Publish(ctx, h.env.JS, h.subject, &amrpipev1.PlanRequest{PlanId: planID}, "plan/"+planID); err != nil {
		t.Fatal(err)
	}
}

// run starts Consume and returns a function that stops it and returns its error.
func (h *harness) run(t *testing.T, handler bus.Handler, o bus.ConsumeOptions) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- bus.Consume(ctx, h.cons, handler, o) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				err = errors.New("Consume did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// settled waits until the consumer has nothing pending or unacknowledged.
func (h *harness) settled(t *testing.T) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		info, err := h.cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// deadLetter returns the last dead letter of the harness's stage, waiting for it to appear.
func (h *harness) deadLetter(t *testing.T) *amrpipev1.DeadLetter {
	t.Helper()
	var raw *jetstream.RawStreamMsg
	waitFor(t, 10*time.Second, func() bool {
		s, err := h.env.JS.Stream(context.Background(), topology.StreamDLQ)
		if err != nil {
			return false
		}
		raw, err = s.GetLastMsgForSubject(context.Background(), topology.DLQSubject(h.stage))
		return err == nil
	})
	dl := &amrpipev1.DeadLetter{}
	if err := proto.Unmarshal(raw.Data, dl); err != nil {
		t.Fatal(err)
	}
	return dl
}

func (h *harness) hasDeadLetter(t *testing.T) bool {
	t.Helper()
	s, err := h.env.JS.Stream(context.Background(), topology.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.GetLastMsgForSubject(context.Background(), topology.DLQSubject(h.stage))
	return err == nil
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func decodePlan(t *testing.T, msg jetstream.Msg) *amrpipev1.PlanRequest {
	t.Helper()
	p := &amrpipev1.PlanRequest{}
	if err := bus.Decode(msg, p); err != nil {
		t.Error(err)
	}
	return p
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		class bus.Class
		delay time.Duration
	}{
		{"nil acks", nil, bus.ClassAck, 0},
		{"plain error retries", errors.New("boom"), bus.ClassRetryable, 0},
		{"wrapped retryable", fmt.Errorf("x: %w", &bus.Retryable{Err: errors.New("y")}), bus.ClassRetryable, 0},
		{"throttled keeps its delay", &bus.Throttled{RetryAfter: 7 * time.Second}, bus.ClassThrottled, 7 * time.Second},
		{"later", &bus.Later{After: time.Minute}, bus.ClassLater, time.Minute},
		{"permanent", &bus.Permanent{Reason: "bad payload"}, bus.ClassPermanent, 0},
		{"permanent wins over a throttled cause", &bus.Permanent{Reason: "r", Err: &bus.Throttled{}}, bus.ClassPermanent, 0},
		{"context cancelled retries", fmt.Errorf("get: %w", context.Canceled), bus.ClassRetryable, 0},
		{"wrapped throttled keeps its delay", fmt.Errorf("create job: %w", &bus.Throttled{RetryAfter: 3 * time.Second}), bus.ClassThrottled, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := bus.Classify(tt.err)
			if v.Class != tt.class || v.Delay != tt.delay {
				t.Fatalf("Classify(%v) = %v/%s, want %v/%s", tt.err, v.Class, v.Delay, tt.class, tt.delay)
			}
			if tt.class == bus.ClassPermanent && v.Reason == "" {
				t.Fatal("permanent verdict without a reason")
			}
		})
	}
}

func TestPublishHeadersAndDuplicates(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(ctx, "submit")
	defer span.End()
	subject := topology.SpecSubject("plan1")
	spec := &amrpipev1.JobSpec{SpecId: "s1", PlanId: "plan1"}
	if _, err := bus.Publish(ctx, env.JS, subject, spec, ""); !errors.Is(err, bus.ErrNoMsgID) {
		t.Fatalf("publish without msg id: err = %v, want ErrNoMsgID", err)
	}
	ack, err := bus.Publish(ctx, env.JS, subject, spec, "spec/s1")
	if err != nil || ack.Duplicate {
		t.Fatalf("first publish: ack %+v err %v", ack, err)
	}
	if ack, err = bus.Publish(ctx, env.JS, subject, spec, "spec/s1"); err != nil || !ack.Duplicate {
		t.Fatalf("second publish with the same id: ack %+v err %v, want duplicate", ack, err)
	}
	s, err := env.JS.Stream(ctx, topology.StreamSpecs)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Nats-Msg-Id":  "spec/s1",
		"Content-Type": "application/protobuf",
		"Amr-Type":     "amrpipe.v1.JobSpec",
	}
	for k, v := range want {
		if got := raw.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	tp0 := raw.Header.Get("traceparent")
	if !strings.Contains(tp0, span.SpanContext().TraceID().String()) {
		t.Errorf("lower-case traceparent = %q, want trace %s", tp0, span.SpanContext().TraceID())
	}
	if _, ok := raw.Header["Traceparent"]; ok {
		t.Error("traceparent was canonicalised")
	}
}

func TestTraceSurvivesPublishConsume(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, span := tp.Tracer("test").Start(context.Background(), "upload event")
	h.publish(t, ctx, "p1")
	span.End()

	got := make(chan trace.SpanContext, 1)
	o := h.options(t)
	o.TracerProvider = tp
	h.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		got <- trace.SpanContextFromContext(ctx)
		return nil
	}, o)
	select {
	case sc := <-got:
		if sc.TraceID() != span.SpanContext().TraceID() {
			t.Fatalf("handler trace %s, want publisher's %s", sc.TraceID(), span.SpanContext().TraceID())
		}
		if sc.SpanID() == span.SpanContext().SpanID() {
			t.Fatal("handler runs in the publisher's span, want its own child span")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message not consumed")
	}
	h.settled(t)
	// The publish has its producer span under the caller's, and the delivery's process span is
	// the producer's child, both named and attributed by the messaging conventions.
	var send sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindProducer && s.Parent().SpanID() == span.SpanContext().SpanID() {
			send = s
		}
	}
	if send == nil {
		t.Fatal("no producer span under the publisher's span")
	}
	wantSend := map[string]string{"messaging.system": "nats", "messaging.operation.type": "send",
		"messaging.destination.name": h.subject, "messaging.message.id": "plan/p1"}
	if got := spanAttrs(send); !hasAll(got, wantSend) {
		t.Fatalf("producer span %q attributes %v, want %v", send.Name(), got, wantSend)
	}
	waitFor(t, 5*time.Second, func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == h.stage+" process" && s.SpanKind() == trace.SpanKindConsumer && s.Parent().SpanID() == send.SpanContext().SpanID() &&
				hasAll(spanAttrs(s), map[string]string{"messaging.operation.type": "process", "messaging.destination.name": h.subject}) {
				return true
			}
		}
		return false
	})
}

// spanAttrs returns a span's attributes as strings.
func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// hasAll says whether got holds every key of want with its value.
func hasAll(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestRedeliveryAfterCrash: a handler that published its output and died before the Ack gets
// the message again after AckWait; its second publish is recognised as a duplicate.
func TestRedeliveryAfterCrash(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 500*time.Millisecond)
	ctx := context.Background()
	h.publish(t, ctx, "p1")
	out := strings.Replace(h.subject, ".in", ".out", 1)
	var dups atomic.Int64
	handle := func(ctx context.Context, msg jetstream.Msg) error {
		plan := decodePlan(t, msg)
		ack, err := bus.Publish(ctx, env.JS, out, &amrpipev1.JobSpec{PlanId: plan.GetPlanId()}, "spec/"+plan.GetPlanId())
		if err != nil {
			return err
		}
		if ack.Duplicate {
			dups.Add(1)
		}
		return nil
	}

	// The "crash": fetch, run the handler, never settle.
	batch, err := h.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		if err := handle(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	stop := h.run(t, handle, h.options(t))
	h.settled(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if dups.Load() != 1 {
		t.Fatalf("duplicate publishes = %d, want 1 (the redelivery's)", dups.Load())
	}
	info, err := env.JS.Stream(ctx, h.stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2 { // the input and one output
		t.Fatalf("stream holds %d messages, want 2 (input + one output)", n)
	}
	if h.hasDeadLetter(t) {
		t.Fatal("a crash redelivery was dead-lettered")
	}
}

type delivery struct {
	n  uint64
	at time.Time
}

// recordingHandler fails the first `fail` deliveries with errFor and succeeds after.
func recordingHandler(fail int, errFor func() error) (bus.Handler, func() []delivery) {
	var mu sync.Mutex
	var got []delivery
	h := func(ctx context.Context, msg jetstream.Msg) error {
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		mu.Lock()
		got = append(got, delivery{meta.NumDelivered, time.Now()})
		n := len(got)
		mu.Unlock()
		if n <= fail {
			return errFor()
		}
		return nil
	}
	return h, func() []delivery { mu.Lock(); defer mu.Unlock(); return append([]delivery(nil), got...) }
}

func TestThrottledIsNotAFailure(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	retryAfter := 150 * time.Millisecond
	handler, deliveries := recordingHandler(4, func() error {
		return fmt.Errorf("create job: %w", &bus.Throttled{RetryAfter: retryAfter})
	})
	o := h.options(t)
	o.MaxFailures = 2 // fewer than the throttled deliveries
	reg := prometheus.NewRegistry()
	m, err := bus.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	o.Metrics = m
	h.publish(t, context.Background(), "p1")
	h.run(t, handler, o)
	waitFor(t, 10*time.Second, func() bool { return len(deliveries()) == 5 })
	h.settled(t)
	got := deliveries()
	for i := 1; i < len(got); i++ {
		if gap := got[i].at.Sub(got[i-1].at); gap < retryAfter*9/10 {
			t.Errorf("delivery %d came %s after the previous, want at least the Retry-After %s", i+1, gap, retryAfter)
		}
	}
	if got[len(got)-1].n != 5 {
		t.Errorf("last delivery count = %d, want 5", got[len(got)-1].n)
	}
	if h.hasDeadLetter(t) {
		t.Fatal("throttled message was dead-lettered")
	}
	want := fmt.Sprintf(`
# HELP amr_stage_messages_total Messages settled by a stage, by outcome.
# TYPE amr_stage_messages_total counter
amr_stage_messages_total{outcome="ack",stage=%[1]q} 1
amr_stage_messages_total{outcome="throttled",stage=%[1]q} 4
`, h.stage)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "amr_stage_messages_total"); err != nil {
		t.Error(err)
	}
}

// TestThrottlingPastTheBudgetCounts: a storm that never ends (Azure Storage answering 503 for
// one blob) dead-letters the message once it is older than the budget, instead of hanging it.
func TestThrottlingPastTheBudgetCounts(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	handler, deliveries := recordingHandler(1000, func() error {
		return &bus.Throttled{RetryAfter: 20 * time.Millisecond, Err: errors.New("503 ServerBusy")}
	})
	o := h.options(t)
	o.MaxFailures = 3
	o.ThrottleBudget = 300 * time.Millisecond
	// The budget runs from the message's publication, not from its first delivery, which comes
	// once the consumer started (tens of milliseconds later on a busy machine).
	published := time.Now()
	h.publish(t, context.Background(), "p1")
	h.run(t, handler, o)
	dl := h.deadLetter(t)
	h.settled(t)
	got := deliveries()
	if age := got[len(got)-1].at.Sub(published); age < o.ThrottleBudget {
		t.Errorf("dead-lettered %s after publication, before the budget %s", age, o.ThrottleBudget)
	}
	if !strings.Contains(dl.GetReason(), "failed 3 times") || !strings.Contains(dl.GetReason(), "503 ServerBusy") {
		t.Fatalf("dead letter reason %q", dl.GetReason())
	}
}

func TestRetryableDeadLettersAtTheLimit(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	// Throttling between failures must not count: 2 failures, 3 throttles, 1 more failure.
	var calls atomic.Int64
	handler, deliveries := recordingHandler(100, func() error {
		if n := calls.Add(1); n >= 3 && n <= 5 {
			return &bus.Throttled{RetryAfter: 10 * time.Millisecond}
		}
		return errors.New("blob download reset")
	})
	o := h.options(t)
	o.MaxFailures = 3
	h.publish(t, context.Background(), "p1")
	h.run(t, handler, o)
	dl := h.deadLetter(t)
	h.settled(t)
	if n := len(deliveries()); n != 6 {
		t.Fatalf("deliveries = %d, want 6 (3 failures + 3 throttled)", n)
	}
	if dl.GetDeliveries() != 6 || !strings.Contains(dl.GetReason(), "failed 3 times") || !strings.Contains(dl.GetReason(), "blob download reset") {
		t.Fatalf("dead letter deliveries %d reason %q", dl.GetDeliveries(), dl.GetReason())
	}
	kv := env.KV(t, topology.BucketFailures)
	keys, err := kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		t.Errorf("failure count %s left behind after the dead letter", k)
	}
}

func TestPermanentDeadLetters(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	handler, deliveries := recordingHandler(1, func() error {
		return &bus.Permanent{Reason: "spec names two webs", Err: errors.New("validate")}
	})
	h.publish(t, context.Background(), "p1")
	h.run(t, handler, h.options(t))
	dl := h.deadLetter(t)
	h.settled(t)
	if n := len(deliveries()); n != 1 {
		t.Fatalf("deliveries = %d, want 1", n)
	}
	plan := &amrpipev1.PlanRequest{}
	if err := proto.Unmarshal(dl.GetPayload(), plan); err != nil || plan.GetPlanId() != "p1" {
		t.Fatalf("dead letter payload: %v %v", plan, err)
	}
	checks := map[string]bool{
		"stage":       dl.GetStage() == h.stage,
		"subject":     dl.GetSubject() == h.subject,
		"reason":      strings.Contains(dl.GetReason(), "spec names two webs"),
		"msg id":      dl.GetMsgId() == "plan/p1" && dl.GetHeaders()["Nats-Msg-Id"] == "plan/p1",
		"deliveries":  dl.GetDeliveries() == 1,
		"stream seq":  dl.GetStreamSequence() == 1 && dl.GetStream() == h.stream,
		"timestamped": dl.GetAt().IsValid(),
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("dead letter %s wrong: %v", name, dl)
		}
	}
}

func TestLaterRedeliversWithoutCounting(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	handler, deliveries := recordingHandler(5, func() error { return &bus.Later{After: 20 * time.Millisecond} })
	o := h.options(t)
	o.MaxFailures = 1
	h.publish(t, context.Background(), "p1")
	h.run(t, handler, o)
	waitFor(t, 10*time.Second, func() bool { return len(deliveries()) == 6 })
	h.settled(t)
	if h.hasDeadLetter(t) {
		t.Fatal("a poll redelivery was dead-lettered")
	}
}

func TestPanicIsRetried(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	var calls atomic.Int64
	h.publish(t, context.Background(), "p1")
	h.run(t, func(context.Context, jetstream.Msg) error {
		if calls.Add(1) == 1 {
			panic("nil map")
		}
		return nil
	}, h.options(t))
	h.settled(t)
	if calls.Load() != 2 {
		t.Fatalf("calls = %d, want 2", calls.Load())
	}
}

// TestDrainLetsInFlightFinish: cancelling Consume while a handler runs lets it finish and Ack.
func TestDrainLetsInFlightFinish(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	started := make(chan struct{})
	release := make(chan struct{})
	var handlerCtxErr atomic.Value
	h.publish(t, context.Background(), "p1")
	stop := h.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		close(started)
		<-release
		if err := ctx.Err(); err != nil {
			handlerCtxErr.Store(err)
		}
		return nil
	}, h.options(t))
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond) // Consume is now draining
	select {
	case err := <-stopped:
		t.Fatalf("Consume returned (%v) while a handler was still running", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if v := handlerCtxErr.Load(); v != nil {
		t.Fatalf("handler context cancelled during drain: %v", v)
	}
	h.settled(t)
}

func TestKeepAliveHoldsAckWait(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 400*time.Millisecond)
	var calls atomic.Int64
	o := h.options(t)
	o.KeepAlive = 100 * time.Millisecond
	h.publish(t, context.Background(), "p1")
	h.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		calls.Add(1)
		time.Sleep(1200 * time.Millisecond) // three AckWaits
		return nil
	}, o)
	waitFor(t, 10*time.Second, func() bool { return calls.Load() >= 1 })
	h.settled(t)
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1: InProgress did not hold the message", n)
	}
}

func TestAsyncPublisher(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	p := bus.NewAsyncPublisher(env.JS, bus.AsyncOptions{MaxPending: 64})
	const n = 1000
	for i := range n {
		batch := &amrpipev1.RecordBatch{JobId: "job1", SourceFile: "Manifest.xml", Batch: uint32(i)}
		if err := p.Publish(ctx, topology.RecordSubject("job1"), batch, fmt.Sprintf("job1/Manifest.xml/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := env.JS.Stream(ctx, topology.StreamRecords)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != n {
		t.Fatalf("stream holds %d records, want %d", got, n)
	}
	// A subject no stream takes: the acknowledgement fails and Flush says so.
	if err := p.Publish(ctx, "nowhere.at.all", &amrpipev1.RecordBatch{}, "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); !errors.Is(err, bus.ErrAsyncPublish) {
		t.Fatalf("Flush after a failed publish = %v, want ErrAsyncPublish", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close after the failure was reported: %v", err)
	}
	if err := p.Publish(ctx, topology.RecordSubject("job1"), &amrpipev1.RecordBatch{}, "y"); !errors.Is(err, bus.ErrPublisherClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
}

// TestAsyncPublisherReportsAcksInOrder: PublishMsg with an encoded payload calls done once per
// message, in publishing order, with the stream's acknowledgement (or the failure), before Flush
// returns.
func TestAsyncPublisherReportsAcksInOrder(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	p := bus.NewAsyncPublisher(env.JS, bus.AsyncOptions{MaxPending: 8})
	var (
		mu   sync.Mutex
		seqs []uint64
		errs []error
	)
	done := func(ack *jetstream.PubAck, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		seqs = append(seqs, ack.Sequence)
	}
	const n = 100
	for i := range n {
		b := &amrpipev1.RecordBatch{JobId: "job1", SourceFile: "Manifest.xml", Batch: uint32(i)}
		data, err := proto.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := bus.NewEncodedMsg(ctx, topology.RecordSubject("job1"), b.ProtoReflect().Descriptor().FullName(), data, fmt.Sprintf("job1/ordered/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.PublishMsg(ctx, msg, done); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(seqs) != n || len(errs) != 0 || !slices.IsSorted(seqs) {
		t.Fatalf("done saw %d acknowledgements (sorted: %t) and %v, want %d in order", len(seqs), slices.IsSorted(seqs), errs, n)
	}
	mu.Unlock()
	raw, err := env.JS.Stream(ctx, topology.StreamRecords)
	if err != nil {
		t.Fatal(err)
	}
	m, err := raw.GetMsg(ctx, seqs[n-1])
	if err != nil {
		t.Fatal(err)
	}
	var got amrpipev1.RecordBatch
	if err := proto.Unmarshal(m.Data, &got); err != nil || got.GetBatch() != n-1 || m.Header.Get(bus.HeaderType) != "amrpipe.v1.RecordBatch" {
		t.Fatalf("last message: batch %d, type %q (%v)", got.GetBatch(), m.Header.Get(bus.HeaderType), err)
	}
	msg, err := bus.NewEncodedMsg(ctx, "nowhere.at.all", "amrpipe.v1.RecordBatch", nil, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PublishMsg(ctx, msg, done); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); !errors.Is(err, bus.ErrAsyncPublish) {
		t.Fatalf("Close after a failed publish = %v, want ErrAsyncPublish", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 1 {
		t.Fatalf("done saw %d failures, want 1", len(errs))
	}
}

// TestDrainDeadlineRequeues: a handler still running DrainTimeout after shutdown has its context
// cancelled; its message goes back at once, uncounted, and the next consumer processes it.
func TestDrainDeadlineRequeues(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	started := make(chan struct{}, 1)
	o := h.options(t)
	o.DrainTimeout = 100 * time.Millisecond
	o.MaxFailures = 1
	h.publish(t, context.Background(), "p1")
	stop := h.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		started <- struct{}{}
		<-ctx.Done()
		return fmt.Errorf("download: %w", ctx.Err())
	}, o)
	<-started
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var again atomic.Int64
	h.run(t, func(context.Context, jetstream.Msg) error { again.Add(1); return nil }, o)
	h.settled(t)
	if again.Load() != 1 || h.hasDeadLetter(t) {
		t.Fatalf("after shutdown: processed %d times by the next consumer, dead letter %v; want 1, false", again.Load(), h.hasDeadLetter(t))
	}
}

func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	for i := range 20 {
		h.publish(t, context.Background(), fmt.Sprintf("p%d", i))
	}
	var running, peak, done atomic.Int64
	o := h.options(t)
	o.Concurrency = 4
	h.run(t, func(context.Context, jetstream.Msg) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		done.Add(1)
		return nil
	}, o)
	h.settled(t)
	if done.Load() != 20 || peak.Load() > 4 || peak.Load() < 2 {
		t.Fatalf("processed %d, peak concurrency %d; want 20 processed with 2..4 at once", done.Load(), peak.Load())
	}
}

func TestDecodeWrongTypeDeadLetters(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	h.publish(t, context.Background(), "p1") // a PlanRequest
	h.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		return bus.Decode(msg, &amrpipev1.JobSpec{})
	}, h.options(t))
	dl := h.deadLetter(t)
	if !strings.Contains(dl.GetReason(), "payload is amrpipe.v1.PlanRequest, want amrpipe.v1.JobSpec") || dl.GetDeliveries() != 1 {
		t.Fatalf("dead letter reason %q after %d deliveries", dl.GetReason(), dl.GetDeliveries())
	}
}

// metricValue reads one sample of a stage's metric from reg (-1 when absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name, stage string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == stage {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func TestMetricsSampleLagAndInFlight(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	for i := range 5 {
		h.publish(t, context.Background(), fmt.Sprintf("p%d", i))
	}
	reg := prometheus.NewRegistry()
	m, err := bus.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	o := h.options(t)
	o.Metrics, o.Concurrency, o.LagInterval = m, 1, 20*time.Millisecond
	release := make(chan struct{})
	h.run(t, func(ctx context.Context, msg jetstream.Msg) error { <-release; return nil }, o)
	// One message in its handler, the others waiting.
	waitFor(t, 10*time.Second, func() bool {
		return metricValue(t, reg, "amr_stage_in_flight", h.stage) == 1 &&
			metricValue(t, reg, "amr_stage_consumer_pending", h.stage)+metricValue(t, reg, "amr_stage_consumer_ack_pending", h.stage) == 5
	})
	close(release)
	h.settled(t)
	waitFor(t, 10*time.Second, func() bool {
		return metricValue(t, reg, "amr_stage_in_flight", h.stage) == 0 &&
			metricValue(t, reg, "amr_stage_consumer_pending", h.stage) == 0
	})
}

// TestDeadLetterHookRunsOnEveryDeadLetter: the stage learns of every message it gives up on,
// whatever the cause, with the reason; a hook that fails keeps the message (redelivered) rather
// than dead-lettering it without its consequence.
func TestDeadLetterHookRunsOnEveryDeadLetter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		hookFails  int // the hook's first calls that fail
		wantReason string
		wantCalls  int
	}{
		{"permanent", &bus.Permanent{Reason: "bad name"}, 0, "bad name", 1},
		{"retries exhausted", errors.New("blob reset"), 0, "failed 2 times, last: blob reset", 1},
		{"hook fails once, then the message comes back", &bus.Permanent{Reason: "bad name"}, 1, "bad name", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.StartJetStream(t)
			h := newHarness(t, env, 30*time.Second)
			handler, _ := recordingHandler(100, func() error { return tt.err })
			var mu sync.Mutex
			var reasons []string
			o := h.options(t)
			o.MaxFailures = 2
			o.MaxDelay = 20 * time.Millisecond
			o.OnDeadLetter = func(_ context.Context, msg jetstream.Msg, reason string) error {
				mu.Lock()
				defer mu.Unlock()
				reasons = append(reasons, reason)
				if len(reasons) <= tt.hookFails {
					return errors.New("job store unavailable")
				}
				return nil
			}
			h.publish(t, context.Background(), "p1")
			h.run(t, handler, o)
			dl := h.deadLetter(t)
			h.settled(t)
			mu.Lock()
			defer mu.Unlock()
			if len(reasons) != tt.wantCalls {
				t.Fatalf("hook called %d times (%q), want %d", len(reasons), reasons, tt.wantCalls)
			}
			for _, r := range reasons {
				if !strings.Contains(r, tt.wantReason) {
					t.Errorf("hook reason %q, want it to say %q", r, tt.wantReason)
				}
			}
			if !strings.Contains(dl.GetReason(), tt.wantReason) {
				t.Errorf("dead letter reason %q", dl.GetReason())
			}
		})
	}
}

// TestHandlerPastItsDeadlineIsGivenUp: a handler that ignores its context past the deadline is
// left to finish on its own, counted as stuck (the runtime's readiness reads the count), and its
// message handed back as a counted failure, until it is dead-lettered.
func TestHandlerPastItsDeadlineIsGivenUp(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, 30*time.Second)
	release := make(chan struct{})
	var calls atomic.Int64
	handler := func(ctx context.Context, msg jetstream.Msg) error {
		calls.Add(1)
		<-release // a read that ignores its context
		return nil
	}
	var stuck atomic.Int64
	o := h.options(t)
	o.Concurrency, o.MaxFailures = 4, 2
	o.HandlerTimeout, o.StuckGrace, o.Stuck = 50*time.Millisecond, 50*time.Millisecond, &stuck
	h.publish(t, context.Background(), "p1")
	stop := h.run(t, handler, o)
	dl := h.deadLetter(t)
	if !strings.Contains(dl.GetReason(), "deadline") || calls.Load() != 2 {
		t.Fatalf("dead letter %q after %d calls; want the deadline given up on twice", dl.GetReason(), calls.Load())
	}
	if n := stuck.Load(); n != 2 {
		t.Fatalf("stuck = %d, want the 2 handlers still running", n)
	}
	close(release)
	waitFor(t, 5*time.Second, func() bool { return stuck.Load() == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestUnsettledDeliveriesAreDeadLettered: deliveries that end without settlement (here: handlers
// that never return, with AckWait redelivering the message meanwhile, as a crashed process or a
// closed connection would) are counted, and the message is dead-lettered once they pass the
// limit instead of coming back forever.
func TestUnsettledDeliveriesAreDeadLettered(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	h := newHarness(t, env, time.Second)
	release := make(chan struct{})
	defer close(release)
	var calls atomic.Int64
	handler := func(ctx context.Context, msg jetstream.Msg) error {
		calls.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	o := h.options(t)
	o.Concurrency, o.KeepAlive, o.MaxUnsettled, o.DrainTimeout = 8, -1, 2, 100*time.Millisecond
	h.publish(t, context.Background(), "p1")
	h.run(t, handler, o)
	dl := h.deadLetter(t)
	if !strings.Contains(dl.GetReason(), "without being settled") {
		t.Fatalf("dead letter reason %q", dl.GetReason())
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the handler ran %d times, want 2: the third delivery is dead-lettered without it", n)
	}
}
