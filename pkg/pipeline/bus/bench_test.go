package bus_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// BenchmarkAsyncPublishRecords publishes record batches the way the parser does; records/s is
// the figure the parser must sustain (≥100K).
func BenchmarkAsyncPublishRecords(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			env := testenv.StartJetStream(b)
			ctx := context.Background()
			batch := &amrpipev1.RecordBatch{JobId: "0b6c1f0e-8d35-4c0a-9f8a-6f1a5d2e7c11", SourceFile: "Manifest.xml"}
			for i := range size {
				batch.Records = append(batch.Records, &amrpipev1.Record{JobId: batch.JobId, SourceFile: "Manifest.xml", ObjectId: fmt.Sprintf("obj-%d", i)})
			}
			p := bus.NewAsyncPublisher(env.JS, bus.AsyncOptions{})
			subject := topology.RecordSubject(batch.JobId)
			b.ResetTimer()
			for i := range b.N {
				batch.Batch = uint32(i)
				if err := p.Publish(ctx, subject, batch, fmt.Sprintf("%s/Manifest.xml/%d", batch.JobId, i)); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
