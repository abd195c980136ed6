// Package runreport builds the run report of a plan: a summary (jobs by state, objects per type,
// bytes, versions, duration, objects/s, throttling) and a failure report (SharePoint's own
// JobError, JobWarning and JobFatalError events per object, failed jobs, dead-lettered specs and
// plannings), as Go values that an HTML report can render and as CSV files (WriteCSV).
//
// Everything comes from what the pipeline stores (pkg/client): the plan's status, each job's
// record (amr_jobs) and summary (AMR_DONE), and its relayed events (AMR_EVENTS, kept 5 days, as
// long as SharePoint keeps a job's status). A report built later than that lacks the events:
// Report.EventsMissing names the jobs whose events were gone.
package runreport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Report is the run report of one plan.
type Report struct {
	PlanID string
	// Built is when the report was built; the plan may still run (Summary.Complete false).
	Built   time.Time
	Summary Summary
	// Jobs are the plan's specs in planning order, with their jobs.
	Jobs []Job
	// ObjectTypes are the records published per object type (Record.object_type), by type name.
	ObjectTypes []ObjectType
	// Failures are SharePoint's issues per object, then failed jobs, dead-lettered specs and
	// plannings, in that order.
	Failures []Failure
	// EventsMissing are the jobs whose relayed events were no longer stored (older than 5 days):
	// their issues and SharePoint's statistics are not in the report.
	EventsMissing []string
	// Status is the plan status the report was built from (jobstore.PlanStatus).
	Status *amrpipev1.PlanStatus
}

// Summary is the plan's totals.
type Summary struct {
	// Complete: every spec has an outcome and every job ended. Failed: a planning or spec was
	// dead-lettered or a job failed: the export is incomplete.
	Complete, Failed bool
	// JobsByState counts the plan's jobs by state name (jobstore.StateName: "done", "failed",
	// "running", ...).
	JobsByState map[string]int
	// Jobs counts the jobs; SpecsPending the specs without a job yet; SpecsDeadLettered those
	// dead-lettered without one; Replanned those re-planned as another plan (a change token
	// SharePoint rejected; that plan has its own report).
	Jobs, SpecsPending, SpecsDeadLettered, Replanned int
	// Objects is SharePoint's count of objects the jobs exported (JobProgress/JobEnd
	// ObjectsProcessed; overlapping jobs each count theirs). Records is the records published,
	// each object once per plan.
	Objects, Records int64
	// Bytes is the size of the files published (current versions); Versions the earlier versions
	// of files and items published (from the parser's job summaries).
	Bytes, Versions int64
	// Started is the first job's submission; Ended the last job's end (zero while one runs).
	Started, Ended time.Time
	// Duration is Ended-Started (or up to Built while the plan runs); RecordsPerSecond is
	// Records/Duration.
	Duration         time.Duration
	RecordsPerSecond float64
	// SQLThrottlingWait is SharePoint's own throttling wait (JobEnd
	// WaitTimeOnSqlThrottlingMilliseconds, summed over jobs); Postponed counts the JobPostponed
	// events (SharePoint put a job back in its queue). The pipeline's waits on 429/503 answers are
	// per host, not per plan: the metric amr_sharepoint_throttle_wait_seconds_total.
	SQLThrottlingWait time.Duration
	Postponed         int
	// Errors, Warnings and FatalErrors count SharePoint's JobError, JobWarning and JobFatalError
	// events.
	Errors, Warnings, FatalErrors int
}

// Job is one spec of the plan and its job.
type Job struct {
	SpecID string
	// JobID is empty when the spec has no job (pending, dead-lettered, re-planned).
	JobID string
	// State is the job's state name (jobstore.StateName), or "pending", "dead-lettered" or
	// "re-planned" for a spec without a job.
	State string
	// Kind is "probe", "security", "multi-url" or "single".
	Kind    string
	Targets []string
	// Submitted, Started and Ended are the job record's times (zero when not reached).
	Submitted, Started, Ended time.Time
	// Objects is SharePoint's count of objects exported; Records the records published.
	Objects, Records int64
	Bytes, Versions  int64
	// Counts are the records published by object type.
	Counts                        map[string]int64
	Errors, Warnings, FatalErrors int
	Postponed                     int
	SQLThrottlingWait             time.Duration
	// Error is the spec's dead-letter reason or the job's last error; Note what else happened.
	Error, Note string
	// ReplanID is the plan published instead of the spec.
	ReplanID string
}

// ObjectType is the records published of one object type.
type ObjectType struct {
	Type    string
	Records int64
}

// Failure categories.
const (
	CategoryJobError      = "JobError"
	CategoryJobWarning    = "JobWarning"
	CategoryJobFatalError = "JobFatalError"
	// CategoryJobFailed: the job ended FAILED (the reason is the job's last error).
	CategoryJobFailed = "JobFailed"
	// CategorySpecDeadLettered: no job was created for the spec.
	CategorySpecDeadLettered = "SpecDeadLettered"
	// CategoryPlanningDeadLettered: the plan (or a probe result) could not be planned.
	CategoryPlanningDeadLettered = "PlanningDeadLettered"
)

// Failure is one row of the failure report.
type Failure struct {
	Category string
	JobID    string
	SpecID   string
	// Time is the event's time (SharePoint's) or the job's end.
	Time time.Time
	// ObjectType, URL and ObjectID name the object SharePoint reported on (JobIssue's ObjectType,
	// Url (as SharePoint sends it: web-relative in its examples) and Id); empty for a fatal error
	// and the pipeline's own failures.
	ObjectType, URL, ObjectID string
	// ErrorCode is SharePoint's signed HRESULT (0 for the pipeline's own failures); ErrorType its
	// exception type.
	ErrorCode int64
	ErrorType string
	Message   string
}

// Build reads what the pipeline stored about a plan and builds its report. The error wraps
// client.ErrNotFound for a plan nobody planned.
func Build(ctx context.Context, c *client.Client, planID string) (*Report, error) {
	st, err := c.PlanStatus(ctx, planID)
	if err != nil {
		return nil, err
	}
	r := &Report{PlanID: planID, Built: time.Now().UTC(), Status: st}
	r.Summary.Complete, r.Summary.Failed = st.GetComplete(), st.GetFailed()
	r.Summary.JobsByState = map[string]int{}
	types := map[string]int64{}
	var own []Failure
	for _, ss := range st.GetSpecs() {
		j, err := buildJob(ctx, c, ss)
		if err != nil {
			return nil, err
		}
		if j.JobID != "" {
			issues, missing, err := jobEvents(ctx, c, &j)
			if err != nil {
				return nil, err
			}
			if missing {
				r.EventsMissing = append(r.EventsMissing, j.JobID)
			}
			r.Failures = append(r.Failures, issues...)
		}
		switch j.State {
		case statePending:
			r.Summary.SpecsPending++
		case stateDeadLettered:
			r.Summary.SpecsDeadLettered++
			own = append(own, Failure{Category: CategorySpecDeadLettered, SpecID: j.SpecID, Message: j.Error})
		case stateReplanned:
			r.Summary.Replanned++
		default:
			r.Summary.Jobs++
			r.Summary.JobsByState[j.State]++
			if j.State == stateFailed {
				own = append(own, Failure{Category: CategoryJobFailed, JobID: j.JobID, SpecID: j.SpecID, Time: j.Ended, Message: j.Error})
			}
		}
		r.add(j, types)
		r.Jobs = append(r.Jobs, j)
	}
	r.Failures = append(r.Failures, own...)
	for _, reason := range st.GetPlanningFailed() {
		r.Failures = append(r.Failures, Failure{Category: CategoryPlanningDeadLettered, Message: reason})
	}
	for t, n := range types {
		r.ObjectTypes = append(r.ObjectTypes, ObjectType{Type: t, Records: n})
	}
	sort.Slice(r.ObjectTypes, func(i, k int) bool { return r.ObjectTypes[i].Type < r.ObjectTypes[k].Type })
	s := &r.Summary
	end := s.Ended
	if !s.Complete || end.IsZero() {
		end = r.Built
	}
	if !s.Started.IsZero() && end.After(s.Started) {
		s.Duration = end.Sub(s.Started)
		s.RecordsPerSecond = float64(s.Records) / s.Duration.Seconds()
	}
	return r, nil
}

// add folds a job into the summary.
func (r *Report) add(j Job, types map[string]int64) {
	s := &r.Summary
	s.Objects += j.Objects
	s.Records += j.Records
	s.Bytes += j.Bytes
	s.Versions += j.Versions
	s.Errors += j.Errors
	s.Warnings += j.Warnings
	s.FatalErrors += j.FatalErrors
	s.Postponed += j.Postponed
	s.SQLThrottlingWait += j.SQLThrottlingWait
	for t, n := range j.Counts {
		types[t] += n
	}
	if !j.Submitted.IsZero() && (s.Started.IsZero() || j.Submitted.Before(s.Started)) {
		s.Started = j.Submitted
	}
	if j.Ended.After(s.Ended) {
		s.Ended = j.Ended
	}
}

// Job states the report counts by, and the states of a spec without a job.
var (
	stateDone   = jobstore.StateName(amrpipev1.JobState_JOB_STATE_DONE)
	stateFailed = jobstore.StateName(amrpipev1.JobState_JOB_STATE_FAILED)
)

const (
	statePending      = "pending"
	stateDeadLettered = "dead-lettered"
	stateReplanned    = "re-planned"
)

// buildJob reads a spec's job record and summary.
func buildJob(ctx context.Context, c *client.Client, ss *amrpipev1.SpecStatus) (Job, error) {
	j := Job{SpecID: ss.GetSpecId(), JobID: ss.GetJobId(), Error: ss.GetError(), Note: ss.GetNote(), ReplanID: ss.GetReplanId(),
		Objects: ss.GetObjects(), Records: ss.GetRecords()}
	switch {
	case j.JobID == "" && j.ReplanID != "":
		j.State = stateReplanned
	case j.JobID == "" && j.Error != "":
		j.State = stateDeadLettered
	case j.JobID == "":
		j.State = statePending
	default:
		j.State = jobstore.StateName(ss.GetState())
	}
	if j.JobID == "" {
		return j, nil
	}
	rec, err := c.Job(ctx, j.JobID)
	if errors.Is(err, client.ErrNotFound) {
		return j, nil // the record follows the submission at once
	}
	if err != nil {
		return j, fmt.Errorf("job %s: %w", j.JobID, err)
	}
	spec := rec.GetSpec()
	j.Kind = Kind(spec)
	j.Targets = slices.Clone(spec.GetUrls())
	j.Submitted, j.Started, j.Ended = ts(rec.GetSubmitted()), ts(rec.GetStarted()), ts(rec.GetEnded())
	j.Counts, j.Bytes, j.Versions = rec.GetCounts(), rec.GetBytes(), rec.GetVersions()
	return j, nil
}

// Kind names what a job reads: "probe", "security", "multi-url" or "single" (Job.Kind).
func Kind(spec *amrpipev1.JobSpec) string {
	switch {
	case spec.GetProbe():
		return "probe"
	case spec.GetEmit() == amrpipev1.Emit_EMIT_SECURITY_ONLY:
		return "security"
	case spec.GetMulti():
		return "multi-url"
	}
	return "single"
}

func ts(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime().UTC()
}

// jobEvents reads a job's relayed events: SharePoint's issues become failures, its JobEnd
// statistics and JobPostponed events go on the job. missing reports a job whose events are gone
// (a job that ran has at least its JobQueued).
func jobEvents(ctx context.Context, c *client.Client, j *Job) (failures []Failure, missing bool, err error) {
	events, err := c.Events(ctx, j.JobID)
	if err != nil {
		return nil, false, err
	}
	if len(events) == 0 {
		return nil, j.State != jobstore.StateName(amrpipev1.JobState_JOB_STATE_SUBMITTED), nil // a job that ran has its JobQueued at least
	}
	var end *amrpipev1.JobStats
	for _, e := range events {
		ev := e.GetEvent()
		switch p := ev.GetPayload().(type) {
		case *amrpipev1.MigrationEvent_JobEnd:
			end = p.JobEnd // a multi-URL job may send one per URL: the last holds the totals so far
		case *amrpipev1.MigrationEvent_JobPostponed:
			j.Postponed++
		case *amrpipev1.MigrationEvent_JobError:
			j.Errors++
			failures = append(failures, issue(CategoryJobError, j, ev, p.JobError))
		case *amrpipev1.MigrationEvent_JobWarning:
			j.Warnings++
			failures = append(failures, issue(CategoryJobWarning, j, ev, p.JobWarning))
		case *amrpipev1.MigrationEvent_JobFatalError:
			j.FatalErrors++
			failures = append(failures, issue(CategoryJobFatalError, j, ev, p.JobFatalError))
		}
	}
	if end != nil {
		j.SQLThrottlingWait = time.Duration(end.GetWaitTimeOnSqlThrottlingMilliseconds() * float64(time.Millisecond))
	}
	return failures, false, nil
}

func issue(category string, j *Job, ev *amrpipev1.MigrationEvent, is *amrpipev1.JobIssue) Failure {
	return Failure{Category: category, JobID: j.JobID, SpecID: j.SpecID, Time: ts(ev.GetTime()),
		ObjectType: is.GetObjectType(), URL: is.GetUrl(), ObjectID: is.GetId(), ErrorCode: is.GetErrorCode(),
		ErrorType: is.GetErrorType(), Message: is.GetMessage()}
}
