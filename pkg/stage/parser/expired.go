package parser

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// RedecryptID is the message id of the request to decrypt a file again, made while the parser
// holds the ManifestReady at stream sequence readySeq: its redeliveries ask once (within the
// events stream's 2-hour window); a later loss of the object, announced by another ManifestReady,
// asks again.
func RedecryptID(jobID, file string, readySeq uint64) string {
	return "manifest-expired/" + jobID + "/" + file + "/" + strconv.FormatUint(readySeq, 10)
}

// RedecryptRequest is the request to decrypt a job's file again: the pipeline's own
// AmrpipeManifestExpired event, with the payload of the file's upload event (so the decryptor reads
// it as it reads the upload), published on the job's event subject under message id id.
func RedecryptRequest(jobID, file, specID, id, reason string, at time.Time) *amrpipev1.RelayedEvent {
	return &amrpipev1.RelayedEvent{
		EventId: id,
		SpecId:  specID,
		Event: &amrpipev1.MigrationEvent{
			Type:    amrpipev1.EventType_EVENT_TYPE_UNKNOWN,
			RawName: topology.EventManifestExpired,
			JobId:   jobID,
			Time:    timestamppb.New(at),
			Payload: &amrpipev1.MigrationEvent_FinishManifestFileUpload{FinishManifestFileUpload: &amrpipev1.FinishManifestFileUpload{
				ManifestFileName: jobID + "/" + file}},
			Extra: map[string]string{"AmrpipeSynthetic": topology.StageParser, "Reason": reason},
		},
	}
}

// objectGone handles a file whose decrypted copy is not in the object store (its TTL expired:
// the parser was down or behind for longer; or another parse of the file finished and deleted it).
// The encrypted file is still in Azure: unless the file is settled already, the parser asks the
// decryptor to decrypt it again (AmrpipeManifestExpired on the job's event subject, the upload
// event's payload) and keeps its ManifestReady, looking again every -redecrypt-poll. It is a wait,
// not a failure: the file fails only if the decryptor cannot make it again (the blob is gone from
// Azure, the job's key expired), which its dead-letter hook records on the job with the reason.
// The message stays in AMR_MANIFESTS meanwhile, so the watchdog does not take the job for stalled.
func (s *Stage) objectGone(ctx context.Context, msg jetstream.Msg, rec *amrpipev1.JobRecord, file string, cause error) error {
	jobID := rec.GetJobId()
	now, _, err := s.store.Job(ctx, jobID)
	if err != nil {
		return err
	}
	if jobstore.Settled(now, file) {
		return nil // another parse finished the file (and deleted its copy)
	}
	meta, err := msg.Metadata()
	if err != nil {
		return &bus.Retryable{Err: fmt.Errorf("metadata of the ManifestReady of %s: %w", file, err)}
	}
	id := RedecryptID(jobID, file, meta.Sequence.Stream)
	reason := fmt.Sprintf("%s: %v", file, cause)
	ev := RedecryptRequest(jobID, file, rec.GetSpec().GetSpecId(), id, reason, s.now())
	ack, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.EventSubject(jobID, topology.EventManifestExpired), ev, id)
	if err != nil {
		return &bus.Retryable{Err: fmt.Errorf("ask for %s to be decrypted again: %w", file, err)}
	}
	if !ack.Duplicate {
		s.metrics.expired.Inc()
		s.log.InfoContext(ctx, "decrypted file gone; asked the decryptor to decrypt it again", "job", jobID, "file", file,
			"reason", reason, "request", id)
	}
	return &bus.Later{After: s.cfg.RedecryptPoll}
}
