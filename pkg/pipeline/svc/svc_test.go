package svc_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func TestGroupStopsAllWhenOneReturns(t *testing.T) {
	var g svc.Group
	boom := errors.New("boom")
	interrupted := make(chan error, 2)
	g.Add(func() error { return boom }, func(error) {})
	for range 2 {
		stop := make(chan struct{})
		g.Add(func() error { <-stop; return nil }, func(err error) { interrupted <- err; close(stop) })
	}
	if err := g.Run(); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the first actor's error", err)
	}
	for range 2 {
		if err := <-interrupted; !errors.Is(err, boom) {
			t.Fatalf("interrupt got %v", err)
		}
	}
	var empty svc.Group
	if err := empty.Run(); err != nil {
		t.Fatal(err)
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	fs := flag.NewFlagSet("decryptor", flag.ContinueOnError)
	var cfg svc.Config
	cfg.RegisterFlags(fs)
	env := map[string]string{"DECRYPTOR_NATS_URL": "nats://a:4222,nats://b:4222", "DECRYPTOR_REPLICAS": "3"}
	if err := flagenv.Parse(fs, "decryptor", []string{"-log-level", "debug"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	want := svc.Config{NATSURL: "nats://a:4222,nats://b:4222", HTTPAddr: ":8080", Replicas: 3, LogLevel: "debug", OTel: "auto",
		DrainTimeout: 30 * time.Second, HandlerTimeout: 10 * time.Minute, MaxFailures: 10, RetryMaxDelay: 5 * time.Minute,
		StreamMetricsInterval: time.Minute}
	if cfg != want {
		t.Fatalf("config = %+v, want %+v", cfg, want)
	}
}

// syncBuffer is a log sink safe for the runtime's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startNATS(t *testing.T) *testenv.NATSServer {
	t.Helper()
	srv, err := testenv.StartNATS(testenv.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() }) // a test may have shut it down already
	return srv
}

func startRuntime(t *testing.T, url string, otel string, traces io.Writer) (*svc.Runtime, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	rt, err := svc.New(context.Background(), svc.Config{
		Name: "test-svc", NATSURL: url, HTTPAddr: "127.0.0.1:0", LogLevel: "debug", OTel: otel, DrainTimeout: 2 * time.Second,
		ApplyTopology: true,
	}, svc.Options{LogOutput: logs, TraceOutput: traces, Lookup: func(string) (string, bool) { return "", false }, Signals: []os.Signal{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Error(err)
		}
	})
	return rt, logs
}

func get(t *testing.T, rt *svc.Runtime, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + rt.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// healthcheck runs a binary's probe mode (the containers' healthcheck) against url.
func healthcheck(url string) (int, string) {
	var stderr bytes.Buffer
	code := svc.Execute("test-svc", &fakeProgram{parseErr: errors.New("the probe parses no flags")},
		[]string{svc.HealthcheckCommand, url}, &stderr)
	return code, stderr.String()
}

func TestHealthAndReadiness(t *testing.T) {
	srv := startNATS(t)
	rt, _ := startRuntime(t, srv.ClientURL(), "none", nil)
	if code, _ := get(t, rt, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	if code, body := get(t, rt, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "topology") {
		t.Fatalf("/readyz before the topology = %d %q, want 503 naming the topology", code, body)
	}
	readyz := "http://" + rt.Addr().String() + "/readyz"
	if code, stderr := healthcheck(readyz); code != 1 || !strings.Contains(stderr, "topology not verified") {
		t.Fatalf("healthcheck before the topology: exit %d %q, want 1 with the reason", code, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rt.EnsureTopology(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, rt, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d %q, want 200", code, body)
	}
	if code, stderr := healthcheck(readyz); code != 0 {
		t.Fatalf("healthcheck of a ready service: exit %d %q, want 0", code, stderr)
	}
	rt.AddReadyCheck("blob store", func(context.Context) error { return errors.New("unreachable") })
	if code, body := get(t, rt, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "blob store") {
		t.Fatalf("/readyz with a failing check = %d %q", code, body)
	}
	rt.AddReadyCheck("blob store", func(context.Context) error { return nil })

	code, body := get(t, rt, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics = %d, want Go runtime metrics", code)
	}
	// NATS goes away: the process stays healthy but is no longer ready.
	srv.Shutdown()
	srv.WaitForShutdown()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get(t, rt, "/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after NATS went away", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get(t, rt, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d after NATS went away", code)
	}
}

func TestRunStopsComponents(t *testing.T) {
	srv := startNATS(t)
	boom := errors.New("consumer deleted")
	tests := []struct {
		name    string
		failing bool
		want    error
	}{
		{"a failing component stops the others", true, boom},
		{"cancelling Run stops every component", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, _ := startRuntime(t, srv.ClientURL(), "none", nil)
			stopped := make(chan struct{})
			rt.Go("long", func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
			if tt.failing {
				rt.Go("failing", func(context.Context) error { return boom })
			}
			ctx, cancel := context.WithCancel(context.Background())
			if !tt.failing {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			defer cancel()
			if err := rt.Run(ctx); !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			select {
			case <-stopped:
			default:
				t.Fatal("Run returned before the long component stopped")
			}
		})
	}
}

func TestStdoutTracesAndTraceIDsInLogs(t *testing.T) {
	srv := startNATS(t)
	traces := &syncBuffer{}
	rt, logs := startRuntime(t, srv.ClientURL(), "stdout", traces)
	ctx, span := rt.Tracer.Tracer("test").Start(context.Background(), "decrypt Manifest.xml")
	rt.Log.InfoContext(ctx, "decrypted")
	span.End()
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	id := span.SpanContext().TraceID().String()
	if !strings.Contains(traces.String(), "decrypt Manifest.xml") {
		t.Fatal("span not exported to stdout on Close")
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+id+`"`) || !strings.Contains(logs.String(), `"service":"test-svc"`) {
		t.Fatalf("log lacks trace id or service: %s", logs.String())
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  svc.Config
	}{
		{"no name", svc.Config{HTTPAddr: "127.0.0.1:0"}},
		{"unknown exporter", svc.Config{Name: "x", HTTPAddr: "127.0.0.1:0", OTel: "zipkin"}},
		{"unknown log level", svc.Config{Name: "x", HTTPAddr: "127.0.0.1:0", LogLevel: "loud"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rt, err := svc.New(context.Background(), tt.cfg, svc.Options{LogOutput: io.Discard}); err == nil {
				_ = rt.Close()
				t.Fatal("New accepted it")
			}
		})
	}
}

// TestConsumeThroughRuntime wires a stage the way a service does and checks its metrics.
func TestConsumeThroughRuntime(t *testing.T) {
	srv := startNATS(t)
	rt, _ := startRuntime(t, srv.ClientURL(), "none", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rt.EnsureTopology(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := topology.BindConsumer(ctx, rt.JS, topology.ConsumerPlanner)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	rt.Go("planner", func(ctx context.Context) error {
		return bus.Consume(ctx, cons, func(ctx context.Context, msg jetstream.Msg) error {
			plan := &amrpipev1.PlanRequest{}
			if err := bus.Decode(msg, plan); err != nil {
				return err
			}
			got <- plan.GetPlanId()
			return nil
		}, rt.ConsumeOptions("planner"))
	})
	runErr := make(chan error, 1)
	runCtx, stop := context.WithCancel(context.Background())
	go func() { runErr <- rt.Run(runCtx) }()
	if _, err := bus.Publish(ctx, rt.JS, topology.SubjectPlanSubmit, &amrpipev1.PlanRequest{PlanId: "hr-1"}, "plan/hr-1"); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "hr-1" {
			t.Fatalf("planner got plan %q", id)
		}
	case <-ctx.Done():
		t.Fatal("plan not consumed")
	}
	stop()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	_, body := get(t, rt, "/metrics")
	if !strings.Contains(body, `amr_stage_messages_total{outcome="ack",stage="planner"} 1`) {
		t.Fatalf("/metrics lacks the planner's ack:\n%s", body)
	}
}

// verifyingRuntime is a service runtime that only verifies the topology, as services do by
// default.
func verifyingRuntime(t *testing.T, url string, mod func(*svc.Config)) (*svc.Runtime, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := svc.Config{Name: "verifier", NATSURL: url, HTTPAddr: "127.0.0.1:0", LogLevel: "debug", OTel: "none", DrainTimeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	rt, err := svc.New(context.Background(), cfg, svc.Options{LogOutput: logs, Lookup: func(string) (string, bool) { return "", false }, Signals: []os.Signal{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return rt, logs
}

// TestServiceWaitsForTheTopology: a service without -apply-topology creates nothing; it waits,
// not ready, until someone applies the topology, then becomes ready.
func TestServiceWaitsForTheTopology(t *testing.T) {
	srv := startNATS(t)
	rt, logs := verifyingRuntime(t, srv.ClientURL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.EnsureTopology(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "waiting for the topology") {
		if time.Now().After(deadline) {
			t.Fatalf("no word of the missing topology in the log:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get(t, rt, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d while the topology is missing", code)
	}
	for _, stream := range []string{topology.StreamRecords, topology.ObjectStream(topology.ObjectManifests)} {
		if _, err := rt.JS.Stream(ctx, stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("a verifying service created %s: %v", stream, err)
		}
	}
	// amrctl topology apply, from elsewhere.
	other, _ := startRuntime(t, srv.ClientURL(), "none", nil)
	if err := other.EnsureTopology(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("EnsureTopology once applied: %v", err)
	}
	if code, body := get(t, rt, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d %q after the topology was applied", code, body)
	}
}

// TestServiceRestoresTheManifestsStore: a standalone server's restart loses the in-memory
// manifests store and keeps the rest of the topology; a service starting then creates the store
// again instead of waiting for an operator.
func TestServiceRestoresTheManifestsStore(t *testing.T) {
	srv := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	applier, _ := startRuntime(t, srv.ClientURL(), "none", nil)
	if err := applier.EnsureTopology(ctx); err != nil {
		t.Fatal(err)
	}
	manifests := topology.ObjectStream(topology.ObjectManifests)
	if err := applier.JS.DeleteStream(ctx, manifests); err != nil { // what the restart does
		t.Fatal(err)
	}
	rt, logs := verifyingRuntime(t, srv.ClientURL(), nil)
	if err := rt.EnsureTopology(ctx); err != nil {
		t.Fatalf("EnsureTopology without the manifests store: %v", err)
	}
	s, err := rt.JS.Stream(ctx, manifests)
	if err != nil {
		t.Fatalf("the manifests store after a service started: %v", err)
	}
	if got := s.CachedInfo().Config.Storage; got != jetstream.MemoryStorage {
		t.Errorf("restored in %v storage, want memory", got)
	}
	if !strings.Contains(logs.String(), "created it again") {
		t.Errorf("no word of the restored store in the log:\n%s", logs)
	}
}

// TestServiceRefusesATopologyItDoesNotFit: a service refuses to start, with the reason, when
// applying its topology would shrink a limit set by the operator, or when what exists is
// configured in a way it cannot work with.
func TestServiceRefusesATopologyItDoesNotFit(t *testing.T) {
	srv := startNATS(t)
	nc, js := (&testenv.JetStream{Server: srv}).Connect(t)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := topology.Ensure(ctx, js, topology.Options{MaxBytes: map[string]int64{topology.StreamRecords: 10 * topology.GiB}}); err != nil {
		t.Fatal(err)
	}
	rt, _ := verifyingRuntime(t, srv.ClientURL(), func(c *svc.Config) { c.ApplyTopology = true })
	err := rt.EnsureTopology(ctx)
	if !errors.Is(err, topology.ErrLower) {
		t.Fatalf("a service applying 6 GiB over 10 GiB = %v, want ErrLower", err)
	}
	for _, want := range []string{"refusing to start", "-apply-topology", "stream AMR_RECORDS has a size limit of 10 GiB", "amrctl topology apply"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	// Verifying only, it starts: limits are the operator's.
	plain, _ := verifyingRuntime(t, srv.ClientURL(), nil)
	if err := plain.EnsureTopology(ctx); err != nil {
		t.Fatal(err)
	}
	// A consumer changed underneath: refused at once, not waited for.
	spec, err := topology.Consumer(topology.ConsumerDecryptor)
	if err != nil {
		t.Fatal(err)
	}
	spec.Config.AckWait = time.Second
	if _, err := js.UpdateConsumer(ctx, spec.Stream, spec.Config); err != nil {
		t.Fatal(err)
	}
	late, _ := verifyingRuntime(t, srv.ClientURL(), nil)
	if err := late.EnsureTopology(ctx); !errors.Is(err, topology.ErrMismatch) || !strings.Contains(err.Error(), "consumer decryptor") {
		t.Fatalf("EnsureTopology with a changed consumer = %v", err)
	}
}

// TestStreamFillMetrics: the runtime exports each stream's bytes, messages and limit.
func TestStreamFillMetrics(t *testing.T) {
	srv := startNATS(t)
	rt, _ := verifyingRuntime(t, srv.ClientURL(), func(c *svc.Config) {
		c.ApplyTopology, c.StreamMetricsInterval = true, 50*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.EnsureTopology(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Publish(ctx, rt.JS, topology.SubjectPlanSubmit, &amrpipev1.PlanRequest{PlanId: "p1"}, "plan/p1"); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- rt.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-runErr; err != nil {
			t.Error(err)
		}
	}()
	want := []string{
		`amr_stream_messages{stream="AMR_PLANS"} 1`,
		`amr_stream_max_bytes{stream="AMR_RECORDS"} 6.442450944e+09`,
		`amr_stream_max_bytes{stream="KV_amr_jobs"} 1.073741824e+09`,
		`amr_stream_max_bytes{stream="OBJ_amr_manifests"} 1.073741824e+09`,
		`amr_stream_consumers{stream="AMR_RECORDS"} 1`,
		`amr_stream_bytes{stream="AMR_PLANS"}`,
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := get(t, rt, "/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s:\n%s", missing, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
