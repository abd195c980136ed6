package storage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	azsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
)

// TestAzureCallsAreTraced: blob calls made within a trace (through the account's clients, and
// through a client of a SAS URL) have a client span per HTTP try, with host, path, operation and
// status, and never the SAS.
func TestAzureCallsAreTraced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, acct := startAzurite(t, ctx)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tctx, root := tp.Tracer("test").Start(ctx, "decryptor process")
	if err := acct.EnsureContainer(tctx, "traced"); err != nil {
		t.Fatal(err)
	}
	sasURL, err := acct.ContainerSAS(tctx, "traced", azsas.ContainerPermissions{Read: true, List: true}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithNoCredential(sasURL,
		&container.ClientOptions{ClientOptions: policy.ClientOptions{PerRetryPolicies: []policy.Policy{storage.TracePolicy("blob")}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewListBlobsFlatPager(nil).NextPage(tctx); err != nil {
		t.Fatal(err)
	}
	root.End()

	var clients int
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %q outside the caller's trace", s.Name())
		}
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		all := s.Name() + " " + s.Status().Description
		for _, v := range attrs {
			all += " " + v
		}
		for _, bad := range []string{"sig", "REDACTED", "?"} {
			if strings.Contains(all, bad) {
				t.Errorf("span %q records %q: %v", s.Name(), bad, attrs)
			}
		}
		if s.SpanKind() == trace.SpanKindClient {
			clients++
			for _, k := range []string{"http.request.method", "server.address", "url.path", "http.response.status_code"} {
				if attrs[k] == "" {
					t.Errorf("client span %q has no %s: %v", s.Name(), k, attrs)
				}
			}
			if s.Parent().SpanID() != root.SpanContext().SpanID() || attrs["azure.storage.restype"] != "container" {
				t.Errorf("client span %q not under the caller's, or without its operation: %v", s.Name(), attrs)
			}
		}
	}
	if clients < 2 {
		names := []string{}
		for _, s := range rec.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("got %d client spans (%q), want both calls traced", clients, names)
	}
}
