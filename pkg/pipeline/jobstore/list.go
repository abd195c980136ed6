package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Jobs returns every job record now in the bucket. Unlike Watch it needs no consumer: it asks the
// bucket's stream for its subjects and reads the last value of each with direct gets, so it works
// the same on a server or a client too busy to keep a watcher's heartbeats.
func (s *Store) Jobs(ctx context.Context) ([]*amrpipev1.JobRecord, error) {
	stream := "KV_" + topology.BucketJobs
	prefix := "$KV." + topology.BucketJobs + "."
	str, err := s.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("job records stream: %w", err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("job records subjects: %w", err)
	}
	out := make([]*amrpipev1.JobRecord, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		msg, err := str.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // purged meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("job record %s: %w", strings.TrimPrefix(subj, prefix), err)
		}
		if op := msg.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" || len(msg.Data) == 0 {
			continue
		}
		rec := &amrpipev1.JobRecord{}
		if err := proto.Unmarshal(msg.Data, rec); err != nil {
			return nil, fmt.Errorf("job record %s: %w", strings.TrimPrefix(subj, prefix), err)
		}
		out = append(out, rec)
	}
	return out, nil
}
