package jobstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Jobs returns every job record now in the bucket. Unlike Watch it needs no push consumer: an
// ordered pull consumer reads the last value of each key in one pass (thousands of records in a
// few round trips, where a get per key took one each), so it works the same on a server or a
// client too busy to keep a watcher's heartbeats.
func (s *Store) Jobs(ctx context.Context) ([]*amrpipev1.JobRecord, error) {
	stream := "KV_" + topology.BucketJobs
	prefix := "$KV." + topology.BucketJobs + "."
	var out []*amrpipev1.JobRecord
	err := bus.ReadStored(ctx, s.js, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + ">"},
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}, 1000, func(msg jetstream.Msg) error {
		if op := msg.Headers().Get("KV-Operation"); op == "DEL" || op == "PURGE" || len(msg.Data()) == 0 {
			return nil
		}
		rec := &amrpipev1.JobRecord{}
		if err := proto.Unmarshal(msg.Data(), rec); err != nil {
			return fmt.Errorf("job record %s: %w", strings.TrimPrefix(msg.Subject(), prefix), err)
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("job records: %w", err)
	}
	return out, nil
}
