package relay

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// GiveUpEventID is the event id (and Nats-Msg-Id) of the end the relay announces for a job it gave
// up on; one per job, so a redelivered give-up publishes nothing new.
func GiveUpEventID(jobID string) string { return "relay-gave-up/" + jobID }

// announceGiveUp publishes a JobFatalError of the relay's own for a job SharePoint will send no
// more events for, so that the parser closes it with a failed summary instead of waiting for a
// JobEnd that will never come. It is marked as the relay's in its extra fields and error type.
func (s *Stage) announceGiveUp(ctx context.Context, jobID, reason string) error {
	ev := &amrpipev1.RelayedEvent{
		EventId: GiveUpEventID(jobID),
		Source:  amrpipev1.Source_SOURCE_PROGRESS_API,
		Event: &amrpipev1.MigrationEvent{
			Type:    amrpipev1.EventType_EVENT_TYPE_JOB_FATAL_ERROR,
			RawName: topology.EventJobFatalError,
			JobId:   jobID,
			Time:    timestamppb.New(s.deps.Now()),
			Payload: &amrpipev1.MigrationEvent_JobFatalError{JobFatalError: &amrpipev1.JobIssue{
				ErrorType: "amrpipe.ProgressRelayGaveUp", Message: reason,
			}},
			Extra: map[string]string{"AmrpipeSynthetic": "progress-relay"},
		},
	}
	if _, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.EventSubject(jobID, topology.EventJobFatalError), ev, GiveUpEventID(jobID)); err != nil {
		return &bus.Retryable{Err: fmt.Errorf("announce the end of job %s: %w", jobID, err)}
	}
	return nil
}
