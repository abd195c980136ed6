package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// PlanStatus computes what became of a plan from what the stages stored: its plannings (the
// plan's and its probe results', amr_plans), each spec's submission (amr_submissions) and each
// job's record (amr_jobs). A plan is complete when it was planned, every spec has an outcome,
// every job is done or failed, and every successful probe job's result was planned; it is failed
// when a planning or a spec was dead-lettered or a job failed: then the export is incomplete.
// It returns an error wrapping ErrNotFound for a plan nobody planned.
func (s *Store) PlanStatus(ctx context.Context, planID string) (*amrpipev1.PlanStatus, error) {
	plannings, err := s.plannings(ctx, planID)
	if err != nil {
		return nil, err
	}
	if len(plannings) == 0 {
		return nil, fmt.Errorf("plan %s: %w", planID, ErrNotFound)
	}
	st := &amrpipev1.PlanStatus{PlanId: planID}
	planned, probesPlanned := false, true
	for _, p := range plannings {
		if reason := p.Index.GetFailed(); reason != "" {
			st.PlanningFailed = append(st.PlanningFailed, reason)
			continue
		}
		for _, spec := range p.Specs {
			ss, err := s.specStatus(ctx, spec)
			if err != nil {
				return nil, err
			}
			st.Specs = append(st.Specs, ss)
			count(st, ss)
			if spec.GetProbe() && ss.GetState() == amrpipev1.JobState_JOB_STATE_DONE {
				result, err := s.Planning(ctx, ProbeIndex(spec.GetSpecId()))
				if err != nil {
					return nil, err
				}
				probesPlanned = probesPlanned && result != nil
			}
		}
	}
	for _, p := range plannings {
		planned = planned || p.Key == PlanIndex(planID) && p.Index.GetFailed() == ""
	}
	st.Failed = len(st.PlanningFailed) > 0 || st.SpecsFailed > 0 || st.JobsFailed > 0
	st.Complete = planned && probesPlanned && st.SpecsPending == 0 && st.JobsLive == 0 && len(st.PlanningFailed) == 0
	return st, nil
}

// specStatus is what became of one spec.
func (s *Store) specStatus(ctx context.Context, spec *amrpipev1.JobSpec) (*amrpipev1.SpecStatus, error) {
	ss := &amrpipev1.SpecStatus{SpecId: spec.GetSpecId(), Probe: spec.GetProbe()}
	sub, err := s.Submission(ctx, spec.GetSpecId())
	if err != nil || sub == nil {
		return ss, err
	}
	ss.Note = SubmissionNote(sub)
	switch {
	case sub.GetFailed() != "":
		ss.Error = sub.GetFailed()
	case sub.GetReplan() != nil:
		ss.ReplanId = sub.GetReplan().GetPlanId()
	case sub.GetJob() != nil:
		ss.JobId = sub.GetJob().GetJobId()
		rec, _, err := s.Job(ctx, ss.JobId)
		if errors.Is(err, ErrNotFound) {
			ss.State = amrpipev1.JobState_JOB_STATE_SUBMITTED // the record follows the submission at once
			return ss, nil
		}
		if err != nil {
			return nil, err
		}
		ss.State, ss.Objects, ss.Records = rec.GetState(), rec.GetObjectsProcessed(), rec.GetRecords()
		if ss.State == amrpipev1.JobState_JOB_STATE_FAILED {
			ss.Error = rec.GetLastError()
		}
	}
	return ss, nil
}

// count adds a spec to the plan's totals.
func count(st *amrpipev1.PlanStatus, ss *amrpipev1.SpecStatus) {
	st.Objects += ss.GetObjects()
	st.Records += ss.GetRecords()
	switch {
	case ss.GetJobId() == "" && ss.GetError() != "":
		st.SpecsFailed++
	case ss.GetJobId() == "" && ss.GetReplanId() == "":
		st.SpecsPending++
	case ss.GetJobId() == "":
	case ss.GetState() == amrpipev1.JobState_JOB_STATE_DONE:
		st.JobsDone++
	case ss.GetState() == amrpipev1.JobState_JOB_STATE_FAILED:
		st.JobsFailed++
	default:
		st.JobsLive++
	}
}

// SubmissionNote says what else happened to a spec beyond its outcome: a create call whose
// outcome is unknown and being reconciled, a job found that way, orphan jobs ("" when nothing).
func SubmissionNote(sub *amrpipev1.Submission) string {
	var notes []string
	if c := sub.GetClaim(); c != nil && c.GetAmbiguousSince() != nil {
		notes = append(notes, fmt.Sprintf("create call outcome unknown since %s: looking for its job in the manifest container",
			c.GetAmbiguousSince().AsTime().UTC().Format(time.RFC3339)))
	}
	for _, a := range sub.GetAttempts() {
		switch a.GetOutcome() {
		case amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_FOUND:
			notes = append(notes, fmt.Sprintf("attempt %d: outcome unknown (%s); its job %s was found by its manifests", a.GetNumber(), a.GetReason(), a.GetJobId()))
		case amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_AMBIGUOUS:
			if HasOutcome(sub) {
				notes = append(notes, fmt.Sprintf("attempt %d: outcome unknown (%s)", a.GetNumber(), a.GetReason()))
			}
		}
	}
	if n := len(sub.GetOrphans()); n > 0 {
		ids := make([]string, n)
		for i, o := range sub.GetOrphans() {
			ids[i] = o.GetJobId()
		}
		notes = append(notes, fmt.Sprintf("%d orphan job(s) (%s): not followed, manifests deleted", n, strings.Join(ids, ", ")))
	}
	return strings.Join(notes, "; ")
}
