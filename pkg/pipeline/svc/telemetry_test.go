package svc_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
)

// otlpReceiver is an OTLP/HTTP endpoint: it keeps what was posted to /v1/traces.
type otlpReceiver struct {
	mu           sync.Mutex
	contentTypes []string
	requests     []*coltracepb.ExportTraceServiceRequest
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := &coltracepb.ExportTraceServiceRequest{}
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.contentTypes = append(o.contentTypes, r.Header.Get("Content-Type"))
	o.requests = append(o.requests, req)
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// exported returns the resource attributes and span names the receiver got.
func (o *otlpReceiver) exported() (map[string]string, []string, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	attrs := map[string]string{}
	var spans []string
	for _, req := range o.requests {
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, s.GetName())
				}
			}
		}
	}
	return attrs, spans, o.contentTypes
}

// clearOTelEnv unsets the OTEL_* variables the machine may have, for the test's duration.
func clearOTelEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "")
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestTracesFollowTheOTELVariables runs a service with the standard variables an operator sets
// and checks what reaches the collector, or why the service refuses to start.
func TestTracesFollowTheOTELVariables(t *testing.T) {
	srv := startNATS(t)
	tests := []struct {
		name      string
		env       map[string]string
		otel      string
		wantErr   string
		wantSpans int // at the OTLP receiver
		console   bool
		wantAttrs map[string]string
		noGRPC    bool // only in a build without -tags otlpgrpc
	}{
		{name: "OTLP over http/protobuf when an endpoint is set, names from the environment", otel: "auto",
			env:       map[string]string{"OTEL_SERVICE_NAME": "decryptor-eu", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test"},
			wantSpans: 1, wantAttrs: map[string]string{"service.name": "decryptor-eu", "deployment.environment.name": "test"}},
		{name: "service name from the program without OTEL_SERVICE_NAME", otel: "auto",
			wantSpans: 1, wantAttrs: map[string]string{"service.name": "test-svc"}},
		{name: "OTEL_TRACES_EXPORTER=none exports nothing", otel: "auto", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}},
		{name: "OTEL_TRACES_EXPORTER=console writes to stdout", otel: "auto", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, console: true},
		{name: "OTEL_SDK_DISABLED records nothing", otel: "otlp", env: map[string]string{"OTEL_SDK_DISABLED": "true"}},
		{name: "the -otel flag wins over OTEL_TRACES_EXPORTER", otel: "none", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}},
		{name: "an unknown OTEL_TRACES_EXPORTER is refused", otel: "auto", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"},
			wantErr: `"zipkin" is not one of otlp, console, none`},
		{name: "an unknown protocol is refused", otel: "otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"},
			wantErr: `OTLP protocol "thrift"`},
		{name: "the traces protocol wins over the general one", otel: "otlp",
			env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, wantSpans: 1},
		{name: "gRPC without -tags otlpgrpc is refused", otel: "otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			wantErr: "rebuild with -tags otlpgrpc", noGRPC: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.noGRPC && grpcBuilt {
				t.Skip("this build has OTLP over gRPC")
			}
			clearOTelEnv(t)
			recv := &otlpReceiver{}
			collector := httptest.NewServer(recv)
			defer collector.Close()
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			stdout := &syncBuffer{}
			rt, err := svc.New(context.Background(), svc.Config{Name: "test-svc", NATSURL: srv.ClientURL(), HTTPAddr: "127.0.0.1:0", OTel: tt.otel},
				svc.Options{LogOutput: io.Discard, TraceOutput: stdout, Lookup: os.LookupEnv, Signals: []os.Signal{}})
			if tt.wantErr != "" {
				if err == nil {
					_ = rt.Close()
					t.Fatalf("New started, want %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, span := rt.Tracer.Tracer("test").Start(context.Background(), "decrypt Manifest.xml")
			span.End()
			if err := rt.Close(); err != nil { // flushes the exporter
				t.Fatal(err)
			}
			attrs, spans, types := recv.exported()
			if len(spans) != tt.wantSpans {
				t.Fatalf("collector got spans %q, want %d", spans, tt.wantSpans)
			}
			for _, ct := range types {
				if ct != "application/x-protobuf" {
					t.Fatalf("export of content type %q, want http/protobuf", ct)
				}
			}
			for k, v := range tt.wantAttrs {
				if attrs[k] != v {
					t.Fatalf("resource %s = %q, want %q (all: %v)", k, attrs[k], v, attrs)
				}
			}
			if tt.wantSpans > 0 && attrs["service.version"] == "" {
				t.Fatalf("no service.version in the resource: %v", attrs)
			}
			if got := strings.Contains(stdout.String(), "decrypt Manifest.xml"); got != tt.console {
				t.Fatalf("span on stdout %v, want %v", got, tt.console)
			}
		})
	}
}

func TestBuildInfoMetricAndVersionFlag(t *testing.T) {
	srv := startNATS(t)
	rt, _ := startRuntime(t, srv.ClientURL(), "none", nil)
	if _, body := get(t, rt, "/metrics"); !strings.Contains(body, "amr_build_info{goversion=\"go") {
		t.Fatalf("/metrics lacks amr_build_info with its labels")
	}
	p := &fakeProgram{}
	if code := svc.Execute("decryptor", p, []string{"-nats-url", "nats://x:4222", "--version"}, io.Discard); code != 0 || p.closed {
		t.Fatalf("--version: exit %d, ran %v; want 0 without running", code, p.closed)
	}
}
