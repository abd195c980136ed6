package decryptor

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// refuse is the decryptor's dead-letter hook: it closes the loop on a package file the decryptor
// gave up on, whatever the cause (a permanent error, retries exhausted). It records the file as
// failed on the job with the reason and tells the parser, which closes the job with a failed
// summary once its end is seen, rather than waiting forever for a file that will never be parsed.
// The message id derives from the upload event's, so a redelivery tells nothing new.
func (s *Stage) refuse(ctx context.Context, msg jetstream.Msg, reason string) error {
	jobID, err := topology.SubjectJob(msg.Subject())
	if err != nil {
		return nil // not a job we can name: the dead letter is all there is to say
	}
	var re amrpipev1.RelayedEvent
	if err := bus.Decode(msg, &re); err != nil || re.GetEventId() == "" {
		return nil
	}
	// A refused file is failed for good: the parser must not wait for it. A name that is no file
	// of the job's folder is no file of the job: the relay failed the job itself if SharePoint's
	// progress log said so, and a forged one changes nothing.
	file, err := topology.ManifestFile(jobID, re.GetEvent().GetFinishManifestFileUpload().GetManifestFileName())
	if err != nil {
		return nil
	}
	rec, err := s.deps.Jobs.Fire(ctx, jobID, jobstore.FileFailed(file, reason))
	switch {
	case errors.Is(err, jobstore.ErrRefused) && rec.GetState() == amrpipev1.JobState_JOB_STATE_UNSPECIFIED:
		return nil // not a job of ours
	case err != nil && !errors.Is(err, jobstore.ErrRefused):
		return fmt.Errorf("record the refused file of job %s: %w", jobID, err)
	}
	return s.deps.JobChanged(ctx, jobID, "file-failed/"+re.GetEventId(), reason)
}
