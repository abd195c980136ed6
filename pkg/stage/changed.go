package stage

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// JobChanged tells the parser that this stage changed a job in a way that may let it complete
// the job (the relay confirmed its end or gave up on it, the decryptor failed one of its files):
// a RelayedEvent named topology.EventJobChanged on the job's event subject, with message id
// "job-changed/<jobID>/<cause>", so a redelivery tells nothing new. The job record holds the
// change already; the message only wakes the parser, which reads the record.
func (d Deps) JobChanged(ctx context.Context, jobID, cause, reason string) error {
	id := "job-changed/" + jobID + "/" + cause
	ev := &amrpipev1.RelayedEvent{
		EventId: id,
		Event: &amrpipev1.MigrationEvent{
			Type:    amrpipev1.EventType_EVENT_TYPE_UNKNOWN,
			RawName: topology.EventJobChanged,
			JobId:   jobID,
			Time:    timestamppb.New(d.Now()),
			Extra:   map[string]string{"AmrpipeSynthetic": d.Name, "Cause": cause, "Reason": reason},
		},
	}
	if _, err := bus.Publish(ctx, d.Runtime.JS, topology.EventSubject(jobID, topology.EventJobChanged), ev, id); err != nil {
		return &bus.Retryable{Err: fmt.Errorf("tell the parser job %s changed (%s): %w", jobID, cause, err)}
	}
	return nil
}
