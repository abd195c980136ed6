package spo_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// TestCallSpans: every REST call made within a trace has a client span named after its method,
// with the HTTP attributes an operator filters on and none of the call's secrets.
func TestCallSpans(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		call      func(ctx context.Context, c *spo.Client, site string) error
		method    string
		path      string
		errorType string
	}{
		{name: "a read job carrying SAS URLs and a key", status: http.StatusOK, body: `{"JobId":"` + jobID + `","JobQueueUri":"` + queueSAS + `"}`,
			call: func(ctx context.Context, c *spo.Client, site string) error {
				_, err := c.CreateSPAsyncReadJob(ctx, site, spo.ReadJobRequest{URL: site + "/Lib", EncryptionKey: testKey,
					ManifestContainerURI: manifestSAS, QueueURI: queueSAS})
				return err
			},
			method: "CreateSPAsyncReadJob", path: "/sites/hr/_api/site/CreateSPAsyncReadJob"},
		{name: "a throttled progress read", status: http.StatusTooManyRequests, body: `{"error":{"code":"-2147024860","message":"throttled"}}`,
			call: func(ctx context.Context, c *spo.Client, site string) error {
				_, err := c.GetMigrationJobProgress(ctx, site, jobID, "0")
				return err
			},
			method: "GetMigrationJobProgress", path: "/sites/hr/_api/site/GetMigrationJobProgress(jobId='" + jobID + "',nextToken=0)",
			errorType: "429"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newFake(t, reply(tt.status, tt.body))
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			ctx, parent := tp.Tracer("test").Start(context.Background(), "relay process")
			err := tt.call(ctx, newClient(t, nil), sp.site())
			parent.End()
			if (err != nil) != (tt.errorType != "") {
				t.Fatalf("call error %v", err)
			}
			var got sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.SpanKind() == trace.SpanKindClient {
					got = s
				}
			}
			if got == nil || got.Name() != tt.method || got.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Fatalf("no client span %q under the caller's", tt.method)
			}
			attrs := map[string]string{}
			for _, kv := range got.Attributes() {
				attrs[string(kv.Key)] = kv.Value.Emit()
			}
			host := strings.Split(strings.TrimPrefix(sp.URL, "http://"), ":")[0]
			want := map[string]string{"http.request.method": http.MethodPost, "server.address": host, "url.path": tt.path,
				"sharepoint.method": tt.method, "http.response.status_code": strconv.Itoa(tt.status)}
			if tt.errorType != "" {
				want["http.request.method"] = http.MethodGet
				want["error.type"] = tt.errorType
			}
			for k, v := range want {
				if attrs[k] != v {
					t.Errorf("%s = %q, want %q", k, attrs[k], v)
				}
			}
			var all strings.Builder
			for _, kv := range got.Attributes() {
				all.WriteString(kv.Value.Emit())
			}
			for _, ev := range got.Events() {
				for _, kv := range ev.Attributes {
					all.WriteString(kv.Value.Emit())
				}
			}
			for _, secret := range []string{manifestSig, queueSig, testToken, "sig="} {
				if strings.Contains(all.String(), secret) {
					t.Errorf("span carries %q", secret)
				}
			}
		})
	}
}
