package decryptor

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// refuse is the decryptor's dead-letter hook: it closes the loop on a package file the decryptor
// gave up on, whatever the cause (a permanent error, retries exhausted). It records the file as
// failed on the job with the reason and announces the job's end as a JobFatalError of its own,
// so the parser publishes a failed summary rather than waiting forever for a file that will never
// be parsed. The announcement's id derives from the upload event's, so a redelivery announces
// nothing new.
func (s *Stage) refuse(ctx context.Context, msg jetstream.Msg, reason string) error {
	jobID, err := topology.SubjectJob(msg.Subject())
	if err != nil {
		return nil // not a job we can name: the dead letter is all there is to say
	}
	var re amrpipev1.RelayedEvent
	if err := bus.Decode(msg, &re); err != nil || re.GetEventId() == "" {
		return nil
	}
	// A refused file is failed for good: the parser must not wait for it.
	t := jobstore.Failed(reason, false)
	if file, ferr := topology.ManifestFile(jobID, re.GetEvent().GetFinishManifestFileUpload().GetManifestFileName()); ferr == nil {
		t = jobstore.FileFailed(file, reason)
	}
	if _, err := s.deps.Jobs.Fire(ctx, jobID, t); err != nil && !errors.Is(err, jobstore.ErrRefused) {
		return fmt.Errorf("record the refused file of job %s: %w", jobID, err)
	}
	ev := &amrpipev1.RelayedEvent{
		EventId: "decryptor-refused/" + re.GetEventId(),
		SpecId:  re.GetSpecId(),
		Event: &amrpipev1.MigrationEvent{
			Type: amrpipev1.EventType_EVENT_TYPE_JOB_FATAL_ERROR, RawName: topology.EventJobFatalError,
			JobId: jobID, Time: timestamppb.New(s.deps.Now()),
			Payload: &amrpipev1.MigrationEvent_JobFatalError{JobFatalError: &amrpipev1.JobIssue{
				ErrorType: "amrpipe.DecryptorRefused", Message: reason,
			}},
			Extra: map[string]string{"AmrpipeSynthetic": "decryptor"},
		},
	}
	if _, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.EventSubject(jobID, topology.EventJobFatalError), ev, ev.EventId); err != nil {
		return &bus.Retryable{Err: fmt.Errorf("announce the failure of job %s: %w", jobID, err)}
	}
	return nil
}
