package inventorysink_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/downstream/inventorysink"
	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// BenchmarkSink measures the inventory sink as the pipeline runs it: record batches already on
// AMR_RECORDS (an embedded JetStream in this process, file storage), read through the default
// downstream consumer by JetStreamSource, decoded and group-committed into a new SQLite
// inventory pass, until every record is committed; the pass's End and the store's Close (its last
// checkpoint) are timed too. The input is BenchmarkIngest's (testenv.HRRecords): the simulator's
// export of the default tenant's HR library and task list with versions, permissions and
// security, in parser batches of 256 records. records/cpu-s counts the CPU of the whole process:
// the sink, the NATS client and the server delivering the batches.
func BenchmarkSink(b *testing.B) {
	ctx := context.Background()
	recs := testenv.HRRecords(b)
	env := testenv.StartJetStream(b)
	stream, err := env.JS.Stream(ctx, topology.StreamRecords)
	if err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	n := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		jobID := fmt.Sprintf("bench-%d", i)
		for k, rb := range batchesOf(jobID, recs) {
			if _, err := bus.Publish(ctx, env.JS, topology.RecordSubject(jobID), rb, fmt.Sprintf("%s/Manifest.xml/%d", jobID, k)); err != nil {
				b.Fatal(err)
			}
		}
		store, err := inventory.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "inv.db"))
		if err != nil {
			b.Fatal(err)
		}
		pass, err := store.BeginPass(ctx, inventory.PassInfo{Tenant: "contoso.sharepoint.com", Scope: "/sites/hr", Kind: inventory.Full, Permissions: true})
		if err != nil {
			b.Fatal(err)
		}
		sink := inventorysink.New(pass, inventorysink.Options{})
		b.StartTimer()
		cpu0 := testenv.ProcessCPU(b)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sink.Run(rctx, &inventorysink.JetStreamSource{JS: env.JS}) }()
		for sink.Records() < int64(len(recs)) {
			time.Sleep(time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if err := pass.End(ctx, true); err != nil {
			b.Fatal(err)
		}
		if err := store.Close(); err != nil {
			b.Fatal(err)
		}
		cpu += testenv.ProcessCPU(b) - cpu0
		b.StopTimer()
		n += len(recs)
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(topology.RecordSubject(jobID))); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(n)/cpu.Seconds(), "records/cpu-s")
}
