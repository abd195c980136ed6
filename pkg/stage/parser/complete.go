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

// handleEnd completes a job when a message says it may be done: SharePoint's end events, and the
// pipeline's own AmrpipeJobChanged (the relay confirmed the end or gave up, the decryptor failed a
// file). The stage that sent it recorded what happened before it did; the parser reads the record
// and completes the job if the record shows the evidence (jobstore.Blocker).
func (s *Stage) handleEnd(ctx context.Context, msg jetstream.Msg) error {
	jobID, _, err := topology.SubjectEvent(msg.Subject())
	if err != nil {
		return &bus.Permanent{Reason: fmt.Sprintf("subject %q is not one of the parser's", msg.Subject())}
	}
	rec, _, err := s.store.Job(ctx, jobID)
	if errors.Is(err, jobstore.ErrNotFound) {
		// The submitter and the relay write the record before any event is relayed.
		return &bus.Retryable{Err: fmt.Errorf("end of job %s: %w", jobID, errUnknownJob)}
	}
	if err != nil {
		return err
	}
	return s.complete(ctx, rec)
}

// complete closes a job whose record shows the evidence (jobstore.Blocker: the end confirmed, or
// seen for a failed job, and every announced file parsed or failed): it publishes
// the probe result (probe jobs) and the summary unless a summary is on amr.done.<jobID> already,
// then, for a job that did not fail, commits the change token its planning tree owes (once the
// whole tree is DONE: commitTokens), and fires Completed (DONE, or FAILED when a file failed).
// Every step may be repeated by a redelivery or run by two replicas at once.
func (s *Stage) complete(ctx context.Context, r *amrpipev1.JobRecord) error {
	switch {
	case r == nil:
		return nil
	case r.GetState() == amrpipev1.JobState_JOB_STATE_DONE:
		// A crash after Completed may have left the tree's token uncommitted.
		return s.commitTokens(ctx, r)
	case jobstore.Blocker(r) != "":
		return nil
	}
	jobID, bad := r.GetJobId(), jobstore.Bad(r)
	published, err := s.summaryPublished(ctx, jobID)
	if err != nil {
		return err
	}
	if !published {
		if r.GetSpec().GetProbe() && !bad {
			if _, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.SubjectPlanProbe, probeResult(r), ProbeMsgID(jobID)); err != nil {
				return err
			}
			s.metrics.probes.Inc()
		}
		if _, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.DoneSubject(jobID), summary(r, bad), jobID); err != nil {
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
		if err := s.commitTokens(ctx, r); err != nil {
			return err
		}
	}
	rec, err := s.store.Fire(ctx, jobID, jobstore.Completed())
	if err != nil && !errors.Is(err, jobstore.ErrRefused) {
		return err
	}
	// The replica that made the job final forgets what was kept to follow it (cursor,
	// seen-markers, parse progress) now rather than at its TTL; its record, key and summary stay.
	if err == nil {
		if ferr := s.store.Forget(ctx, jobID); ferr != nil {
			s.log.WarnContext(ctx, "forget a final job's state (its TTL removes it later)", "job", jobID, "err", ferr)
		}
	}
	if !bad && rec != nil {
		// Two replicas completing the last two jobs of a tree at once each find the other one
		// live before it fires Completed; after firing, at least one finds both DONE.
		return s.commitTokens(ctx, rec)
	}
	return nil
}

// commitTokens commits the change tokens of the job at the root of r's planning tree once the
// tree is done. That job read lists' roots or folder targets and holds their tokens (jobTokens);
// when it is a probe, the jobs planned from its result (recursively) read the rest, and a token,
// which tells the next incremental pass that everything before it was exported, may be stored
// only once all of them ended DONE (jobstore.TreeDone): a job of the tree that failed never
// delivered what the token would skip. r counts as DONE (it is, or is being completed). Not
// committing is the safe side: the next incremental pass then reads the list in full.
func (s *Stage) commitTokens(ctx context.Context, r *amrpipev1.JobRecord) error {
	root, err := s.store.TreeRoot(ctx, r)
	if err != nil || root == nil || len(jobTokens(root, timestamppb.New(s.now()))) == 0 {
		return err
	}
	done, err := s.store.TreeDone(ctx, root, r.GetJobId())
	if err != nil || !done {
		return err
	}
	return s.commitToken(ctx, root)
}

// summaryPublished looks for the job's summary on its subject.
func (s *Stage) summaryPublished(ctx context.Context, jobID string) (bool, error) {
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
		Files: r.GetFilesParsed(), Ended: r.GetEnded(), Bytes: r.GetBytes(), Versions: r.GetVersions(),
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

// commitToken stores the change token of every list the job read from its root: the list of
// token_list_id with the create call's CurrentChangeToken, and the lists of the spec's list_tokens
// with the token read while planning (for token_list_id too when the create call's answer was
// lost and the job was found by reconciliation). A token issued later (by a newer job of the list)
// stands.
func (s *Stage) commitToken(ctx context.Context, r *amrpipev1.JobRecord) error {
	for _, t := range jobTokens(r, timestamppb.New(s.now())) {
		if err := s.commitListToken(ctx, r.GetJobId(), t); err != nil {
			return err
		}
	}
	return nil
}

// jobTokens are the tokens a successful job commits, each with its issue time: for a job with a
// scope (an incremental job over folder targets) one per folder, never its list's.
func jobTokens(r *amrpipev1.JobRecord, now *timestamppb.Timestamp) []*amrpipev1.StoredToken {
	spec := r.GetSpec()
	var out []*amrpipev1.StoredToken
	tokenList := spec.GetTokenListId()
	fromCall := tokenList != "" && r.GetChangeToken() != ""
	if fromCall {
		issued := r.GetSubmitted() // the create call returned the token
		for _, t := range []*timestamppb.Timestamp{r.GetStarted(), r.GetEnded(), now} {
			if issued == nil {
				issued = t
			}
		}
		scopes := spec.GetScope()
		if len(scopes) == 0 {
			scopes = []string{""}
		}
		for _, sc := range scopes {
			out = append(out, &amrpipev1.StoredToken{ListId: tokenList, Token: r.GetChangeToken(), Issued: issued, Scope: sc})
		}
	}
	for _, t := range spec.GetListTokens() {
		if t.GetToken() == "" || t.GetRead() == nil || fromCall && jobstore.TokenKey(t.GetListId()) == jobstore.TokenKey(tokenList) {
			continue
		}
		out = append(out, &amrpipev1.StoredToken{ListId: t.GetListId(), Token: t.GetToken(), Issued: t.GetRead(), Scope: t.GetScope()})
	}
	return out
}

// commitListToken stores one list's (or folder's) token, unless the same or a token issued later
// is stored.
func (s *Stage) commitListToken(ctx context.Context, jobID string, tok *amrpipev1.StoredToken) error {
	cur, _, err := s.store.ScopedToken(ctx, tok.GetListId(), tok.GetScope())
	switch {
	case errors.Is(err, jobstore.ErrNotFound):
	case err != nil:
		return err
	case cur.GetToken() == tok.GetToken():
		return nil
	case cur.GetIssued().AsTime().After(tok.GetIssued().AsTime()):
		s.log.InfoContext(ctx, "newer change token stored; keeping it", "job", jobID, "list", tok.GetListId(), "stored_by", cur.GetJobId())
		return nil
	}
	tok.JobId = jobID
	if err := s.store.PutToken(ctx, tok); err != nil {
		return err
	}
	s.metrics.tokens.Inc()
	return nil
}
