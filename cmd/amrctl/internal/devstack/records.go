package devstack

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
	// ByJob counts records per AMR job id.
	ByJob map[string]int
	// Batches is the number of record batches; Records the number of records.
	Batches, Records int
}

// Records reads the whole records stream as it is now.
func (s *Stack) Records(ctx context.Context) (*Downstream, error) {
	d := &Downstream{Content: map[Object]int{}, ByJob: map[string]int{}}
	nc, js, err := s.Connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	cons, err := js.CreateConsumer(ctx, topology.StreamRecords, topology.ReaderConsumer(topology.RecordSubject("*")))
	if err != nil {
		return nil, fmt.Errorf("records consumer: %w", err)
	}
	defer func() { _ = js.DeleteConsumer(context.WithoutCancel(ctx), topology.StreamRecords, cons.CachedInfo().Name) }()
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
				d.Content[Object{r.GetObjectType(), r.GetObjectId()}]++
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

// Diff describes how got differs from want: missing, unexpected and duplicated objects.
func Diff(got, want map[Object]int) error {
	var missing, extra, dup []Object
	for o := range want {
		if got[o] == 0 {
			missing = append(missing, o)
		}
	}
	for o, n := range got {
		switch {
		case want[o] == 0:
			extra = append(extra, o)
		case n > 1:
			dup = append(dup, o)
		}
	}
	if len(missing)+len(extra)+len(dup) == 0 {
		return nil
	}
	return fmt.Errorf("downstream vs ground truth (%d objects): %d missing %v, %d unexpected %v, %d duplicated %v",
		len(want), len(missing), first(missing), len(extra), first(extra), len(dup), first(dup))
}

func first(s []Object) []Object { return s[:min(3, len(s))] }
