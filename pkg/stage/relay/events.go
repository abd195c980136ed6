package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
	"github.com/amrpipe/amrpipe/pkg/stage/decryptor"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// event is one decoded event of a job, ready to relay.
type event struct {
	ev   *amrpipev1.MigrationEvent
	id   string // amrevent.EventID
	name string // subject token
	seq  uint64 // position in GetMigrationJobProgress (1-based), 0 when unknown
}

// newEvent decodes one event of job jobID; the error says why it cannot be relayed.
func newEvent(jobID string, data []byte, seq uint64) (event, error) {
	ev, err := amrevent.DecodeEvent(data)
	if err != nil {
		return event{}, err
	}
	if !strings.EqualFold(ev.GetJobId(), jobID) {
		return event{}, fmt.Errorf("event of job %q", ev.GetJobId())
	}
	name := eventName(ev)
	if err := topology.CheckToken(name); err != nil {
		return event{}, fmt.Errorf("event name: %w", err)
	}
	return event{ev: ev, id: amrevent.EventID(ev), name: name, seq: seq}, nil
}

// eventName is the subject token of an event: SharePoint's name of a known type (whatever case it
// was sent in), else the raw name.
func eventName(ev *amrpipev1.MigrationEvent) string {
	switch ev.GetType() {
	case amrpipev1.EventType_EVENT_TYPE_UNSPECIFIED, amrpipev1.EventType_EVENT_TYPE_UNKNOWN:
		return strings.TrimSpace(ev.GetRawName())
	}
	var b strings.Builder
	for _, w := range strings.Split(strings.TrimPrefix(ev.GetType().String(), "EVENT_TYPE_"), "_") {
		b.WriteString(w[:1] + strings.ToLower(w[1:]))
	}
	return b.String()
}

// relay records a batch of a job's events in its JobRecord, then publishes each event no source
// published before. problems are decoding failures to record as the job's last error; submitted,
// when given (the poller), fills in a record the submitter's write has not reached. It returns
// the stored record and how many events it published (the others had been published before).
//
// The record is updated first so that a stage reacting to an event (the parser to JobEnd) finds
// its effect (the announced files) already there; the update is idempotent, so a page read again
// after a crash changes nothing.
func (s *Service) relay(ctx context.Context, jobID string, source amrpipev1.Source, events []event, problems []string,
	submitted *amrpipev1.SubmittedJob) (*amrpipev1.JobRecord, int, error) {
	var from amrpipev1.JobState
	rec, err := s.deps.Store.Update(ctx, jobID, func(r *amrpipev1.JobRecord) error {
		from = r.GetState()
		if !apply(r, events, problems, submitted, s.deps.Now()) {
			return jobstore.ErrNoChange
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if rec.GetState() != from {
		s.metrics.jobStates.WithLabelValues(stateLabel(rec.GetState())).Inc()
	}
	specID := rec.GetSpec().GetSpecId()
	published := 0
	for _, e := range events {
		first, err := s.publish(ctx, jobID, specID, source, e)
		if err != nil {
			return nil, published, err
		}
		if first {
			published++
		}
	}
	return rec, published, nil
}

// publish publishes one event unless it was published before: check, publish, then mark (a crash
// between publish and mark republishes under the same message id, which the stream drops). It
// reports whether this call published the event first.
func (s *Service) publish(ctx context.Context, jobID, specID string, source amrpipev1.Source, e event) (bool, error) {
	src := sourceLabel(source)
	seen, err := s.deps.Store.Seen(ctx, jobID, e.id)
	if err != nil {
		return false, err
	}
	if seen {
		s.metrics.duplicates.WithLabelValues(src).Inc()
		return false, nil
	}
	msg := &amrpipev1.RelayedEvent{EventId: e.id, Source: source, Event: e.ev, SpecId: specID, Sequence: e.seq}
	ack, err := bus.Publish(ctx, s.rt.JS, topology.EventSubject(jobID, e.name), msg, e.id)
	if err != nil {
		return false, err
	}
	if _, err := s.deps.Store.MarkSeen(ctx, jobID, e.id); err != nil {
		return false, err
	}
	if ack.Duplicate { // the other source published it moments ago
		s.metrics.duplicates.WithLabelValues(src).Inc()
		return false, nil
	}
	s.metrics.events.WithLabelValues(src, e.name).Inc()
	return true, nil
}

// apply folds events into a job record and reports whether it changed. States only move forward
// (submitted, queued, running, ended; the parser's done; failed is final), counts only grow,
// announced files are a set: applying the same events twice, or in another order from the other
// source, gives the same record.
func apply(r *amrpipev1.JobRecord, events []event, problems []string, submitted *amrpipev1.SubmittedJob, now time.Time) bool {
	before := proto.Clone(r)
	if r.GetSpec() == nil && submitted != nil {
		r.Spec, r.Container, r.Queue = submitted.GetSpec(), submitted.GetContainer(), submitted.GetQueue()
		r.ChangeToken, r.Submitted = submitted.GetChangeToken(), submitted.GetSubmitted()
		advance(r, amrpipev1.JobState_JOB_STATE_SUBMITTED)
	}
	for _, p := range problems {
		r.LastError = p
	}
	for _, e := range events {
		applyEvent(r, e.ev, now)
	}
	return !proto.Equal(before, r)
}

func applyEvent(r *amrpipev1.JobRecord, ev *amrpipev1.MigrationEvent, now time.Time) {
	at := ev.GetTime()
	if at == nil {
		at = timestamppb.New(now)
	}
	switch ev.GetType() {
	case amrpipev1.EventType_EVENT_TYPE_JOB_QUEUED, amrpipev1.EventType_EVENT_TYPE_JOB_POSTPONED:
		advance(r, amrpipev1.JobState_JOB_STATE_QUEUED)
	case amrpipev1.EventType_EVENT_TYPE_JOB_START:
		advance(r, amrpipev1.JobState_JOB_STATE_RUNNING)
		if r.GetStarted() == nil {
			r.Started = at
		}
	case amrpipev1.EventType_EVENT_TYPE_JOB_PROGRESS:
		advance(r, amrpipev1.JobState_JOB_STATE_RUNNING)
		counts(r, ev.GetJobProgress())
	case amrpipev1.EventType_EVENT_TYPE_FINISH_MANIFEST_FILE_UPLOAD:
		advance(r, amrpipev1.JobState_JOB_STATE_RUNNING)
		file, err := decryptor.ManifestFile(r.GetJobId(), ev.GetFinishManifestFileUpload().GetManifestFileName())
		if err != nil {
			// Never wait for a file the decryptor will refuse: the job cannot complete correctly.
			fail(r, "FinishManifestFileUpload: "+err.Error())
			return
		}
		if !contains(r.GetFilesAnnounced(), file) {
			r.FilesAnnounced = append(r.FilesAnnounced, file)
		}
	case amrpipev1.EventType_EVENT_TYPE_JOB_END:
		counts(r, ev.GetJobEnd())
		r.JobEndSeen = true
		if r.GetEnded() == nil {
			r.Ended = at
		}
		advance(r, amrpipev1.JobState_JOB_STATE_ENDED)
	case amrpipev1.EventType_EVENT_TYPE_JOB_CANCELLED:
		fail(r, fmt.Sprintf("SharePoint cancelled the job (JobCancelled, CancelledByUser=%v)", ev.GetJobCancelled().GetCancelledByUser()))
		if r.GetEnded() == nil {
			r.Ended = at
		}
	case amrpipev1.EventType_EVENT_TYPE_JOB_FATAL_ERROR:
		issue := ev.GetJobFatalError()
		fail(r, fmt.Sprintf("JobFatalError %d (%s): %s", issue.GetErrorCode(), issue.GetErrorType(), issue.GetMessage()))
	}
}

// advance moves the state forward only (the enum is ordered; done and failed are past ended).
func advance(r *amrpipev1.JobRecord, to amrpipev1.JobState) {
	if r.GetState() < to {
		r.State = to
	}
}

func fail(r *amrpipev1.JobRecord, reason string) {
	r.State = amrpipev1.JobState_JOB_STATE_FAILED
	r.LastError = reason
}

func counts(r *amrpipev1.JobRecord, st *amrpipev1.JobStats) {
	r.ObjectsProcessed = max(r.GetObjectsProcessed(), st.GetObjectsProcessed())
	r.ExpectedObjects = max(r.GetExpectedObjects(), st.GetTotalExpectedSpObjects())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// markFailed records why the relay gave up on a job (ended: and that its event stream is over)
// and returns the Permanent error that dead-letters its message.
func (s *Service) markFailed(ctx context.Context, jobID, reason string, ended bool) error {
	var from amrpipev1.JobState
	_, err := s.deps.Store.Update(ctx, jobID, func(r *amrpipev1.JobRecord) error {
		from = r.GetState()
		fail(r, reason)
		if ended && r.GetEnded() == nil {
			r.Ended = timestamppb.New(s.deps.Now())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record failure of job %s: %w", jobID, err)
	}
	if from != amrpipev1.JobState_JOB_STATE_FAILED {
		s.metrics.jobStates.WithLabelValues(stateLabel(amrpipev1.JobState_JOB_STATE_FAILED)).Inc()
	}
	s.log.WarnContext(ctx, "job failed", "job", jobID, "reason", reason)
	if err := s.announceGiveUp(ctx, jobID, reason); err != nil {
		return err
	}
	return &bus.Permanent{Reason: reason}
}

// errUnknownJob marks a job that has no record (not ours, or not recorded yet).
var errUnknownJob = errors.New("no such job recorded")
