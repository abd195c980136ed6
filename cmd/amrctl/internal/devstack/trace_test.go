package devstack_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// TestOneTraceFromPlanToRecords runs a small export through the five stages with every span
// recorded in memory and checks that the plan's publish starts one trace that reaches the
// record batches: producer spans on the publishes, consumer spans in every stage, client spans on
// the SharePoint and Azure calls in between.
func TestOneTraceFromPlanToRecords(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	s := start(t, func(o *devstack.Options) { o.SpanProcessor = rec })
	// amrctl's side of the publish: a root span of the caller's.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sctx, root := tp.Tracer("amrctl").Start(ctx, "plan submit")
	p := testenv.SmallPlan(s.SiteURL, "traced", false)
	p.Targets = p.Targets[:1] // one library: one job
	if err := s.Submit(sctx, p); err != nil {
		t.Fatal(err)
	}
	root.End()
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}

	var (
		inTrace   []sdktrace.ReadOnlySpan
		traceIDs  = map[trace.TraceID]bool{}
		haveKinds = map[string]int{}
	)
	for _, sp := range rec.Ended() {
		traceIDs[sp.SpanContext().TraceID()] = true
		if sp.SpanContext().TraceID() == root.SpanContext().TraceID() {
			inTrace = append(inTrace, sp)
		}
	}
	names := map[string]bool{}
	for _, sp := range inTrace {
		attrs := map[string]string{}
		for _, kv := range sp.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		names[sp.SpanKind().String()+" "+sp.Name()] = true
		switch {
		case sp.SpanKind() == trace.SpanKindProducer && strings.HasPrefix(attrs["messaging.destination.name"], "amr.plans"):
			haveKinds["plan publish"]++
		case sp.SpanKind() == trace.SpanKindProducer && strings.HasPrefix(attrs["messaging.destination.name"], "amr.specs"):
			haveKinds["spec publish"]++
		case sp.SpanKind() == trace.SpanKindProducer && strings.HasPrefix(attrs["messaging.destination.name"], "amr.records."):
			haveKinds["record batch publish"]++
		case sp.SpanKind() == trace.SpanKindConsumer && attrs["messaging.operation.type"] == "process":
			haveKinds["consumer"]++
		case sp.SpanKind() == trace.SpanKindClient && attrs["sharepoint.method"] != "":
			haveKinds["SharePoint call"]++
		case sp.SpanKind() == trace.SpanKindClient && strings.HasPrefix(sp.Name(), "blob "):
			haveKinds["Azure blob call"]++
		}
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	for _, want := range []string{"plan publish", "spec publish", "consumer", "SharePoint call", "Azure blob call", "record batch publish"} {
		if haveKinds[want] == 0 {
			t.Errorf("the plan's trace has no %s; it has %d spans: %s", want, len(inTrace), strings.Join(list, ", "))
		}
	}
	t.Logf("the plan's trace: %d spans %v, of %d traces recorded", len(inTrace), haveKinds, len(traceIDs))
}
