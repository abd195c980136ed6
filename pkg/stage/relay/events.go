package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
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
	if t := ev.GetType(); t == amrpipev1.EventType_EVENT_TYPE_UNSPECIFIED || t == amrpipev1.EventType_EVENT_TYPE_UNKNOWN {
		return event{}, fmt.Errorf("%w: %q", errUnknownEvent, truncate(ev.GetRawName(), 64))
	}
	return event{ev: ev, id: amrevent.EventID(ev), name: eventName(ev), seq: seq}, nil
}

// errUnknownEvent: an event name outside SharePoint's documented set. Such an event is never
// turned into a subject, key or metric label: it is dead-lettered, and changes no job.
var errUnknownEvent = errors.New("event name outside SharePoint's documented set")

// eventName is the subject token of an event of a known type: SharePoint's name for it, whatever
// case it was sent in.
func eventName(ev *amrpipev1.MigrationEvent) string {
	var b strings.Builder
	for _, w := range strings.Split(strings.TrimPrefix(ev.GetType().String(), "EVENT_TYPE_"), "_") {
		b.WriteString(w[:1] + strings.ToLower(w[1:]))
	}
	return b.String()
}

// relay records a batch of a job's events in its JobRecord, then publishes each event no source
// published before. problems are events that did not decode (the job then cannot succeed); submitted,
// when given (the poller), fills in a record the submitter's write has not reached. It returns
// the stored record and how many events it published (the others had been published before).
//
// The record is updated first so that a stage reacting to an event (the parser to JobEnd) finds
// its effect (the announced files) already there; the transitions are idempotent, so a page
// read again after a crash changes nothing. A transition the job's state refuses (an event
// after the job was completed) is logged and counted (amr_job_transitions_refused_total); the
// event is still published: the stream is SharePoint's, the record the lifecycle's.
func (s *Stage) relay(ctx context.Context, jobID string, source amrpipev1.Source, events []event, problems []string,
	submitted *amrpipev1.SubmittedJob) (*amrpipev1.JobRecord, int, error) {
	rec, err := s.deps.Jobs.Fire(ctx, jobID, transitions(jobID, source, events, problems, submitted, s.deps.Now())...)
	if errors.Is(err, jobstore.ErrRefused) {
		s.log.InfoContext(ctx, "events the job's state does not take", "job", jobID, "err", err)
	} else if err != nil {
		return nil, 0, err
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
func (s *Stage) publish(ctx context.Context, jobID, specID string, source amrpipev1.Source, e event) (bool, error) {
	src := sourceLabel(source)
	seen, err := s.deps.Jobs.Seen(ctx, jobID, e.id)
	if err != nil {
		return false, err
	}
	if seen {
		s.metrics.duplicates.WithLabelValues(src).Inc()
		return false, nil
	}
	msg := &amrpipev1.RelayedEvent{EventId: e.id, Source: source, Event: e.ev, SpecId: specID, Sequence: e.seq}
	ack, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.EventSubject(jobID, e.name), msg, e.id)
	if err != nil {
		return false, err
	}
	if _, err := s.deps.Jobs.MarkSeen(ctx, jobID, e.id); err != nil {
		return false, err
	}
	if ack.Duplicate { // the other source published it moments ago
		s.metrics.duplicates.WithLabelValues(src).Inc()
		return false, nil
	}
	s.metrics.events.WithLabelValues(src, e.name).Inc()
	return true, nil
}

// transitions are the lifecycle transitions of a batch of a job's events (jobstore fires them):
// the SubmittedJob first when the poller gives one, then the events that did not decode (the job
// cannot succeed), then one per event that changes the job. Applying the same events twice, or
// in another order from the other source, gives the same record.
//
// The progress API is the authoritative source: only its events announce files and end jobs.
// The queue's events (fewer, earlier, and for a plaintext job unauthenticated) move the state
// and counts forward and wake the decryptor early, nothing more; their ends are left to the
// progress API.
func transitions(jobID string, source amrpipev1.Source, events []event, problems []string, submitted *amrpipev1.SubmittedJob, now time.Time) []jobstore.Transition {
	var ts []jobstore.Transition
	if submitted != nil {
		ts = append(ts, jobstore.Accepted(submitted))
	}
	for _, p := range problems {
		ts = append(ts, jobstore.Malformed(p))
	}
	for _, e := range events {
		if source != amrpipev1.Source_SOURCE_PROGRESS_API && !informative(e.ev.GetType()) {
			continue
		}
		if t, ok := transition(jobID, e.ev, now); ok {
			ts = append(ts, t)
		}
	}
	return ts
}

// informative reports the event types a non-authoritative source may apply: they move the state
// and the counts forward, and neither announce a file nor end the job.
func informative(t amrpipev1.EventType) bool {
	switch t {
	case amrpipev1.EventType_EVENT_TYPE_JOB_QUEUED, amrpipev1.EventType_EVENT_TYPE_JOB_POSTPONED,
		amrpipev1.EventType_EVENT_TYPE_JOB_START, amrpipev1.EventType_EVENT_TYPE_JOB_PROGRESS:
		return true
	}
	return false
}

// ends reports the event types that end a job; from the queue they are left to the progress API.
func ends(t amrpipev1.EventType) bool {
	switch t {
	case amrpipev1.EventType_EVENT_TYPE_JOB_END, amrpipev1.EventType_EVENT_TYPE_JOB_CANCELLED, amrpipev1.EventType_EVENT_TYPE_JOB_FATAL_ERROR:
		return true
	}
	return false
}

// transition is what one event means for its job; false for events that do not change it
// (JobError, JobWarning, JobLogFileCreate…). An event without a time happened now.
func transition(jobID string, ev *amrpipev1.MigrationEvent, now time.Time) (jobstore.Transition, bool) {
	at := now
	if ev.GetTime().IsValid() {
		at = ev.GetTime().AsTime()
	}
	switch ev.GetType() {
	case amrpipev1.EventType_EVENT_TYPE_JOB_QUEUED, amrpipev1.EventType_EVENT_TYPE_JOB_POSTPONED:
		return jobstore.Queued(), true
	case amrpipev1.EventType_EVENT_TYPE_JOB_START:
		return jobstore.Started(at), true
	case amrpipev1.EventType_EVENT_TYPE_JOB_PROGRESS:
		return jobstore.Progressed(ev.GetJobProgress()), true
	case amrpipev1.EventType_EVENT_TYPE_FINISH_MANIFEST_FILE_UPLOAD:
		file, err := topology.ManifestFile(jobID, ev.GetFinishManifestFileUpload().GetManifestFileName())
		if err != nil {
			// Never wait for a file the decryptor will refuse: the job cannot complete correctly.
			return jobstore.Failed("FinishManifestFileUpload: "+err.Error(), false), true
		}
		return jobstore.FileAnnounced(file), true
	case amrpipev1.EventType_EVENT_TYPE_JOB_END:
		return jobstore.EndSeen(at, ev.GetJobEnd()), true
	case amrpipev1.EventType_EVENT_TYPE_JOB_CANCELLED:
		return jobstore.Cancelled(at, fmt.Sprintf("SharePoint cancelled the job (JobCancelled, CancelledByUser=%v)",
			ev.GetJobCancelled().GetCancelledByUser())), true
	case amrpipev1.EventType_EVENT_TYPE_JOB_FATAL_ERROR:
		issue := ev.GetJobFatalError()
		return jobstore.Failed(fmt.Sprintf("JobFatalError %d (%s): %s", issue.GetErrorCode(), issue.GetErrorType(), issue.GetMessage()), false), true
	}
	return jobstore.Transition{}, false
}

// markFailed records why the relay gave up on a job (ended: and that its event stream is over),
// tells the parser, and returns the Permanent error that dead-letters its message.
func (s *Stage) markFailed(ctx context.Context, jobID, reason string, ended bool) error {
	if _, err := s.deps.Jobs.Fire(ctx, jobID, jobstore.Failed(reason, ended)); err != nil && !errors.Is(err, jobstore.ErrRefused) {
		return fmt.Errorf("record failure of job %s: %w", jobID, err)
	}
	s.log.WarnContext(ctx, "job failed", "job", jobID, "reason", reason)
	if err := s.deps.JobChanged(ctx, jobID, "relay-gave-up", reason); err != nil {
		return err
	}
	return &bus.Permanent{Reason: reason}
}

// errUnknownJob marks a job that has no record (not ours, or not recorded yet).
var errUnknownJob = errors.New("no such job recorded")
