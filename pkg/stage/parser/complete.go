package parser

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// ProbeMsgID is the Nats-Msg-Id of a probe job's ProbeResult.
func ProbeMsgID(jobID string) string { return "probe/" + jobID }

// handleEnd notes how a job ended and completes it if its files are all parsed. The relay has
// recorded the event already; recording it here too keeps the parser right on its own.
func (s *Service) handleEnd(ctx context.Context, msg jetstream.Msg) error {
	var ev amrpipev1.RelayedEvent
	if err := bus.Decode(msg, &ev); err != nil {
		return err
	}
	jobID, err := subjectJob(msg.Subject(), 4, 2)
	if err != nil {
		return err
	}
	name := msg.Subject()[len(topology.EventSubject(jobID, "")):]
	at := ev.GetEvent().GetTime()
	if at == nil {
		at = timestamppb.New(s.now())
	}
	rec, err := s.store.Update(ctx, jobID, func(r *amrpipev1.JobRecord) error {
		if r.GetSpec() == nil && r.GetState() == amrpipev1.JobState_JOB_STATE_UNSPECIFIED {
			return errUnknownJob
		}
		return noteEnd(r, name, at)
	})
	if errors.Is(err, errUnknownJob) {
		return &bus.Retryable{Err: fmt.Errorf("%s of job %s: %w", name, jobID, err)}
	}
	if err != nil {
		return err
	}
	return s.complete(ctx, rec)
}

// noteEnd records a job's end event; jobstore.ErrNoChange when it was recorded before.
func noteEnd(r *amrpipev1.JobRecord, event string, at *timestamppb.Timestamp) error {
	if r.GetState() == amrpipev1.JobState_JOB_STATE_DONE {
		return jobstore.ErrNoChange // completed: a late event changes nothing
	}
	changed := false
	if r.GetEnded() == nil {
		r.Ended, changed = at, true
	}
	switch event {
	case topology.EventJobEnd:
		if !r.GetJobEndSeen() {
			r.JobEndSeen, changed = true, true
		}
	case topology.EventJobFatalError, topology.EventJobCancelled:
		if r.GetState() != amrpipev1.JobState_JOB_STATE_FAILED {
			r.State, changed = amrpipev1.JobState_JOB_STATE_FAILED, true
			if r.GetLastError() == "" {
				r.LastError = "SharePoint ended the job with " + event
			}
		}
	default:
		return fmt.Errorf("%s is not an end event", event)
	}
	if !changed {
		return jobstore.ErrNoChange
	}
	return nil
}

// ended reports a job whose event stream is over: JobEnd, or a fatal error or cancellation.
func ended(r *amrpipev1.JobRecord) bool {
	return r.GetJobEndSeen() || r.GetEnded() != nil && r.GetState() == amrpipev1.JobState_JOB_STATE_FAILED
}

// waiting returns the announced files not parsed (or failed) yet.
func waiting(r *amrpipev1.JobRecord) []string {
	var out []string
	for _, f := range r.GetFilesAnnounced() {
		if !slices.Contains(r.GetFilesParsed(), f) && !slices.Contains(r.GetFilesFailed(), f) {
			out = append(out, f)
		}
	}
	return out
}

func failed(r *amrpipev1.JobRecord) bool {
	return r.GetState() == amrpipev1.JobState_JOB_STATE_FAILED || len(r.GetFilesFailed()) > 0
}

// complete closes a job that has ended and whose announced files are all parsed: it publishes
// the probe result (probe jobs) and the summary unless a summary is on amr.done.<jobID> already,
// then, for a job that did not fail, commits the change token and sets the state DONE. Every
// step may be repeated by a redelivery or run by two replicas at once.
func (s *Service) complete(ctx context.Context, r *amrpipev1.JobRecord) error {
	if r == nil || r.GetState() == amrpipev1.JobState_JOB_STATE_DONE || !ended(r) || len(waiting(r)) > 0 {
		return nil
	}
	jobID, bad := r.GetJobId(), failed(r)
	published, err := s.summaryPublished(ctx, jobID)
	if err != nil {
		return err
	}
	if !published {
		if r.GetSpec().GetProbe() && !bad {
			if _, err := bus.Publish(ctx, s.rt.JS, topology.SubjectPlanProbe, probeResult(r), ProbeMsgID(jobID)); err != nil {
				return err
			}
			s.metrics.probes.Inc()
		}
		if _, err := bus.Publish(ctx, s.rt.JS, topology.DoneSubject(jobID), summary(r, bad), jobID); err != nil {
			return err
		}
		outcome := "done"
		if bad {
			outcome = "failed"
		}
		s.metrics.summaries.WithLabelValues(outcome).Inc()
		s.log.InfoContext(ctx, "job summary published", "job", jobID, "outcome", outcome, "records", r.GetRecords(),
			"files", len(r.GetFilesParsed()), "errors", len(r.GetErrors()))
	}
	if !bad {
		if err := s.commitToken(ctx, r); err != nil {
			return err
		}
	}
	_, err = s.store.Update(ctx, jobID, func(r *amrpipev1.JobRecord) error {
		to := amrpipev1.JobState_JOB_STATE_DONE
		if bad {
			to = amrpipev1.JobState_JOB_STATE_FAILED
		}
		if r.GetState() == to || r.GetState() == amrpipev1.JobState_JOB_STATE_FAILED {
			return jobstore.ErrNoChange // failed is final, whoever said so
		}
		r.State = to
		return nil
	})
	return err
}

// summaryPublished looks for the job's summary on its subject.
func (s *Service) summaryPublished(ctx context.Context, jobID string) (bool, error) {
	_, err := s.done.GetLastMsgForSubject(ctx, topology.DoneSubject(jobID))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, &bus.Retryable{Err: fmt.Errorf("look up summary of job %s: %w", jobID, err)}
	}
	return true, nil
}

// summary is the job's JobSummary. A failed job's summary carries no change token: its records
// are incomplete, and the next incremental pass must start from the previous token.
func summary(r *amrpipev1.JobRecord, bad bool) *amrpipev1.JobSummary {
	spec := r.GetSpec()
	sm := &amrpipev1.JobSummary{
		JobId: r.GetJobId(), SpecId: spec.GetSpecId(), PlanId: spec.GetPlanId(), Counts: r.GetCounts(),
		Records: r.GetRecords(), Errors: slices.Clone(r.GetErrors()), ListIds: spec.GetListIds(), Failed: bad,
		Files: r.GetFilesParsed(), Ended: r.GetEnded(),
	}
	if sm.Ended == nil {
		sm.Ended = r.GetUpdated()
	}
	if !bad {
		sm.ChangeToken = r.GetChangeToken()
	} else if le := r.GetLastError(); le != "" && !slices.Contains(sm.Errors, le) {
		sm.Errors = append(sm.Errors, le)
	}
	return sm
}

// commitToken stores the job's change token for its list, unless a token issued later (by a
// newer job of the list) is stored already.
func (s *Service) commitToken(ctx context.Context, r *amrpipev1.JobRecord) error {
	listID, token := r.GetSpec().GetTokenListId(), r.GetChangeToken()
	if listID == "" || token == "" {
		return nil
	}
	issued := r.GetSubmitted() // the create call returned the token
	for _, t := range []*timestamppb.Timestamp{r.GetStarted(), r.GetEnded(), timestamppb.New(s.now())} {
		if issued == nil {
			issued = t
		}
	}
	cur, _, err := s.store.Token(ctx, listID)
	switch {
	case errors.Is(err, jobstore.ErrNotFound):
	case err != nil:
		return err
	case cur.GetToken() == token:
		return nil
	case cur.GetIssued().AsTime().After(issued.AsTime()):
		s.log.InfoContext(ctx, "newer change token stored; keeping it", "job", r.GetJobId(), "list", listID, "stored_by", cur.GetJobId())
		return nil
	}
	if err := s.store.PutToken(ctx, &amrpipev1.StoredToken{ListId: listID, Token: token, Issued: issued, JobId: r.GetJobId()}); err != nil {
		return err
	}
	s.metrics.tokens.Inc()
	return nil
}
