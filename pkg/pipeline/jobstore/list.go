package jobstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// fetchWait bounds one fetch of job records.
const fetchWait = 5 * time.Second

// Jobs returns every job record now in the bucket. Unlike Watch it needs no push consumer: an
// ordered pull consumer reads the last value of each key in one pass (thousands of records in a
// few round trips, where a get per key took one each), so it works the same on a server or a
// client too busy to keep a watcher's heartbeats.
func (s *Store) Jobs(ctx context.Context) ([]*amrpipev1.JobRecord, error) {
	stream := "KV_" + topology.BucketJobs
	prefix := "$KV." + topology.BucketJobs + "."
	str, err := s.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("job records stream: %w", err)
	}
	cons, err := str.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + ">"},
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, InactiveThreshold: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("job records: %w", err)
	}
	defer func() { _ = bus.DropReader(ctx, s.js, stream, cons) }()
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("job records: %w", err)
	}
	left := int(info.NumPending)
	out := make([]*amrpipev1.JobRecord, 0, left)
	for left > 0 {
		// Bounded, not ctx's whole deadline: on a cluster a fetch sent while a leader changes is
		// lost, and the caller (a look at the pipeline) asks again.
		batch, err := cons.Fetch(min(left, 1000), jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			return nil, fmt.Errorf("job records: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if op := msg.Headers().Get("KV-Operation"); op == "DEL" || op == "PURGE" || len(msg.Data()) == 0 {
				continue
			}
			rec := &amrpipev1.JobRecord{}
			if err := proto.Unmarshal(msg.Data(), rec); err != nil {
				return nil, fmt.Errorf("job record %s: %w", strings.TrimPrefix(msg.Subject(), prefix), err)
			}
			out = append(out, rec)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("job records: %w", err)
		}
		if n == 0 {
			return nil, fmt.Errorf("job records: %d not delivered within %s", left, fetchWait)
		}
		left -= n
	}
	return out, nil
}
