package testenv

// This file reads what a downstream consumer of the records stream receives.

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Downstream is what a consumer of the records stream received, counted without any
// de-duplication of its own, so that a record published twice shows up twice.
type Downstream struct {
	// Content counts content records (ContentTypes) by type and id.
	Content map[Object]int
	// From says where each content record came from, "<jobID>/<source file>" per delivery, so
	// that a duplicate tells a file parsed twice from two jobs publishing one object.
	From map[Object][]string
	// ByJob counts records per AMR job id.
	ByJob map[string]int
	// Batches is the number of record batches; Records the number of records.
	Batches, Records int
}

// Records reads the whole records stream as it is now. js should be a connection of its own: the
// stream may hold hundreds of megabytes.
func Records(ctx context.Context, js jetstream.JetStream) (*Downstream, error) {
	d := &Downstream{Content: map[Object]int{}, From: map[Object][]string{}, ByJob: map[string]int{}}
	cons, err := js.OrderedConsumer(ctx, topology.StreamRecords, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("records consumer: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.NumPending == 0 {
		return d, nil
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(8 << 20))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("read records: %w", err)
		}
		var b amrpipev1.RecordBatch
		if err := bus.Decode(msg, &b); err != nil {
			return nil, err
		}
		d.Batches++
		for _, r := range b.GetRecords() {
			d.Records++
			d.ByJob[r.GetJobId()]++
			if ContentTypes[r.GetObjectType()] && isContent(r) {
				o := Object{r.GetObjectType(), r.GetObjectId()}
				d.Content[o]++
				d.From[o] = append(d.From[o], r.GetJobId()+"/"+r.GetSourceFile())
			}
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		if meta.NumPending == 0 {
			return d, nil
		}
	}
}

// isContent tells content records from the role assignments that share an SPObject header.
func isContent(r *amrpipev1.Record) bool {
	return r.GetFile() != nil || r.GetFolder() != nil || r.GetListItem() != nil || r.GetList() != nil ||
		r.GetSpObject().GetIsDeleted()
}
