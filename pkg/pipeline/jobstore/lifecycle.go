package jobstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// This file is the job lifecycle: the one place that says how a job moves between states and
// which fields of its record change with it. Stages fire named transitions (Store.Fire); none
// writes a JobRecord field itself.
//
// A job is SUBMITTED when SharePoint accepted it, QUEUED and RUNNING as SharePoint reports, ENDED
// at its JobEnd, and FAILED when SharePoint cancels it, reports a fatal error, or a stage gives up
// on it. The parser completes it (DONE, or FAILED when a file failed or an event did not decode)
// only with evidence: SharePoint's end confirmed by the progress API (nothing followed it) and
// every announced file parsed or failed. Rules is the table; docs/ARCHITECTURE.md draws it.
//
// DONE and FAILED are final. Events arrive at least once, so a transition that changes nothing
// (the same event again, a late event of a failed job) is a no-op (ErrNoChange), never an error;
// a transition the state does not allow (a file announced after the job was completed, an event
// of a job nobody submitted) is refused with a *RefusedError and leaves the record as it was.

// Kind names a transition.
type Kind string

// The transitions.
const (
	// OnSubmitted: SharePoint accepted the job (submitter); fills in what is missing.
	OnSubmitted Kind = "submitted"
	// OnQueued: JobQueued or JobPostponed.
	OnQueued Kind = "queued"
	// OnStarted: JobStart.
	OnStarted Kind = "started"
	// OnProgressed: JobProgress, with SharePoint's counts.
	OnProgressed Kind = "progressed"
	// OnFileAnnounced: FinishManifestFileUpload of a package file.
	OnFileAnnounced Kind = "file-announced"
	// OnEndSeen: JobEnd.
	OnEndSeen Kind = "end-seen"
	// OnEndConfirmed: the progress API showed nothing after the job's end (the relay stops following it).
	OnEndConfirmed Kind = "end-confirmed"
	// OnCancelled: JobCancelled.
	OnCancelled Kind = "cancelled"
	// OnFailed: JobFatalError, or a stage gave up on the job (the relay lost it, the decryptor
	// refused one of its files).
	OnFailed Kind = "failed"
	// OnNoted: a problem worth showing that does not change the state (last_error).
	OnNoted Kind = "noted"
	// OnMalformed: an event of the job did not decode: the job cannot succeed.
	OnMalformed Kind = "malformed"
	// OnFileParsed: the parser published a file's records.
	OnFileParsed Kind = "file-parsed"
	// OnFileFailed: a file could not be read or parsed (dead-lettered).
	OnFileFailed Kind = "file-failed"
	// OnCompleted: the parser closes the job: DONE, or FAILED when a file failed.
	OnCompleted Kind = "completed"
)

// States, short.
const (
	stateNone      = amrpipev1.JobState_JOB_STATE_UNSPECIFIED
	stateSubmitted = amrpipev1.JobState_JOB_STATE_SUBMITTED
	stateQueued    = amrpipev1.JobState_JOB_STATE_QUEUED
	stateRunning   = amrpipev1.JobState_JOB_STATE_RUNNING
	stateEnded     = amrpipev1.JobState_JOB_STATE_ENDED
	stateDone      = amrpipev1.JobState_JOB_STATE_DONE
	stateFailed    = amrpipev1.JobState_JOB_STATE_FAILED
)

// Rule is one row of the lifecycle table: a transition allowed from some states, and where it
// leads. To is Stay when the state does not change (the transition's effect on the record still
// applies); Ignore rows accept the transition and change nothing at all.
type Rule struct {
	On     Kind
	From   []amrpipev1.JobState
	To     amrpipev1.JobState
	Ignore bool
}

// Stay is Rule.To for a transition that keeps the state.
const Stay = amrpipev1.JobState(-1)

// Rules is the lifecycle table; a (transition, state) pair it does not list is refused.
func Rules() []Rule {
	live := []amrpipev1.JobState{stateSubmitted, stateQueued, stateRunning, stateEnded}
	early := []amrpipev1.JobState{stateSubmitted, stateQueued}
	all := []amrpipev1.JobState{stateSubmitted, stateQueued, stateRunning, stateEnded, stateDone, stateFailed}
	return []Rule{
		{On: OnSubmitted, From: []amrpipev1.JobState{stateNone}, To: stateSubmitted},
		{On: OnSubmitted, From: all, To: Stay},
		{On: OnQueued, From: []amrpipev1.JobState{stateSubmitted}, To: stateQueued},
		{On: OnQueued, From: []amrpipev1.JobState{stateQueued, stateRunning, stateEnded, stateFailed}, Ignore: true},
		{On: OnStarted, From: early, To: stateRunning},
		{On: OnStarted, From: []amrpipev1.JobState{stateRunning, stateEnded}, To: Stay},
		{On: OnStarted, From: []amrpipev1.JobState{stateFailed}, Ignore: true},
		{On: OnProgressed, From: early, To: stateRunning},
		{On: OnProgressed, From: []amrpipev1.JobState{stateRunning, stateEnded, stateFailed}, To: Stay},
		{On: OnFileAnnounced, From: early, To: stateRunning},
		{On: OnFileAnnounced, From: []amrpipev1.JobState{stateRunning, stateEnded, stateFailed}, To: Stay},
		{On: OnEndSeen, From: []amrpipev1.JobState{stateSubmitted, stateQueued, stateRunning}, To: stateEnded},
		{On: OnEndSeen, From: []amrpipev1.JobState{stateEnded, stateFailed}, To: Stay},
		{On: OnEndSeen, From: []amrpipev1.JobState{stateDone}, Ignore: true},
		{On: OnEndConfirmed, From: []amrpipev1.JobState{stateEnded, stateFailed}, To: Stay},
		{On: OnEndConfirmed, From: []amrpipev1.JobState{stateDone}, Ignore: true},
		{On: OnCancelled, From: live, To: stateFailed},
		{On: OnCancelled, From: []amrpipev1.JobState{stateFailed}, To: Stay},
		{On: OnFailed, From: live, To: stateFailed},
		{On: OnFailed, From: []amrpipev1.JobState{stateFailed}, To: Stay},
		{On: OnNoted, From: all, To: Stay},
		{On: OnMalformed, From: []amrpipev1.JobState{stateSubmitted, stateQueued, stateRunning, stateEnded, stateFailed}, To: Stay},
		{On: OnFileParsed, From: []amrpipev1.JobState{stateSubmitted, stateQueued, stateRunning, stateEnded, stateFailed}, To: Stay},
		{On: OnFileFailed, From: []amrpipev1.JobState{stateSubmitted, stateQueued, stateRunning, stateEnded, stateFailed}, To: Stay},
		{On: OnCompleted, From: []amrpipev1.JobState{stateEnded}, To: stateDone},
		{On: OnCompleted, From: []amrpipev1.JobState{stateFailed}, To: Stay},
		{On: OnCompleted, From: []amrpipev1.JobState{stateDone}, Ignore: true},
	}
}

// rule finds the row of (k, from).
func rule(k Kind, from amrpipev1.JobState) (Rule, bool) {
	for _, r := range Rules() {
		if r.On == k && slices.Contains(r.From, from) {
			return r, true
		}
	}
	return Rule{}, false
}

// ErrRefused is matched (errors.Is) by every *RefusedError.
var ErrRefused = errors.New("transition refused")

// RefusedError is a transition the job's state or a guard does not allow.
type RefusedError struct {
	Job  string
	On   Kind
	From amrpipev1.JobState
	Why  string
}

func (e *RefusedError) Error() string {
	why := e.Why
	if why == "" {
		why = "not allowed from " + StateName(e.From)
	}
	return fmt.Sprintf("job %s: %s refused: %s", e.Job, e.On, why)
}

// Is matches ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// StateName is a state's short name ("running"), for logs, metrics and errors.
func StateName(s amrpipev1.JobState) string {
	if s == stateNone {
		return "none"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

// Transition is one event of a job's lifecycle, ready to fire.
type Transition struct {
	On Kind
	// effect changes the record's fields (not its state); it may run more than once (compare-and-set).
	effect func(r *amrpipev1.JobRecord, now time.Time)
	// guard, if set, must hold for a state-changing rule to apply: "" or the reason it does not.
	guard func(r *amrpipev1.JobRecord) string
	// to overrides the rule's target (Completed of a job with a failed file).
	to func(r *amrpipev1.JobRecord) amrpipev1.JobState
}

// apply fires t on r (a copy the caller may discard): ErrNoChange when it changes nothing,
// *RefusedError when not allowed.
func (t Transition) apply(r *amrpipev1.JobRecord, now time.Time) error {
	from := r.GetState()
	ru, ok := rule(t.On, from)
	if !ok {
		return &RefusedError{Job: r.GetJobId(), On: t.On, From: from}
	}
	if ru.Ignore {
		return ErrNoChange
	}
	to := ru.To
	if to != Stay && t.guard != nil {
		if why := t.guard(r); why != "" {
			return &RefusedError{Job: r.GetJobId(), On: t.On, From: from, Why: why}
		}
	}
	if to != Stay && t.to != nil {
		to = t.to(r)
	}
	before := proto.Clone(r)
	if t.effect != nil {
		t.effect(r, now)
	}
	if to != Stay {
		r.State = to
	}
	if proto.Equal(before, r) {
		return ErrNoChange
	}
	return nil
}

// Fire applies transitions to a job's record in order, in one compare-and-set, and returns the
// stored record. A refused transition leaves the record as it was and the others still apply;
// the refusals are returned (errors.Is ErrRefused) with the record. A job without a record starts
// empty: only Submitted is allowed on it.
func (s *Store) Fire(ctx context.Context, jobID string, ts ...Transition) (*amrpipev1.JobRecord, error) {
	var (
		refused error
		moves   []move
	)
	rec, err := s.update(ctx, jobID, func(r *amrpipev1.JobRecord) error {
		var changed bool
		changed, moves, refused = apply(r, s.now(), ts)
		if !changed {
			return ErrNoChange
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.metrics.count(moves)
	return rec, refused
}

// Apply fires transitions on a record in memory, as Fire does inside its compare-and-set, and
// reports whether the record changed; refusals are returned (errors.Is ErrRefused) and leave
// the record as it was. For pure functions that fold events and for their tests.
func Apply(r *amrpipev1.JobRecord, now time.Time, ts ...Transition) (bool, error) {
	changed, _, refused := apply(r, now, ts)
	return changed, refused
}

func apply(r *amrpipev1.JobRecord, now time.Time, ts []Transition) (changed bool, moves []move, refused error) {
	var errs []error
	for _, t := range ts {
		from := r.GetState()
		err := t.apply(r, now)
		switch {
		case err == nil:
			changed = true
			moves = append(moves, move{t.On, from, r.GetState()})
		case errors.Is(err, ErrNoChange):
		default:
			errs = append(errs, err)
			moves = append(moves, move{t.On, from, -1})
		}
	}
	return changed, moves, errors.Join(errs...)
}

// move is one fired transition, for the metrics; to is -1 when refused.
type move struct {
	on       Kind
	from, to amrpipev1.JobState
}

// Accepted records what SharePoint accepted (submitter), keeping what others wrote already.
func Accepted(job *amrpipev1.SubmittedJob) Transition {
	return Transition{On: OnSubmitted, effect: func(r *amrpipev1.JobRecord, _ time.Time) {
		if r.Spec == nil {
			r.Spec = job.GetSpec()
		}
		if r.Container == "" {
			r.Container = job.GetContainer()
		}
		if r.Queue == "" {
			r.Queue = job.GetQueue()
		}
		if r.ChangeToken == "" {
			r.ChangeToken = job.GetChangeToken()
		}
		if r.Submitted == nil {
			r.Submitted = job.GetSubmitted()
		}
		if r.ExpectedObjects == 0 && job.GetSpec().GetExpectedItems() > 0 {
			r.ExpectedObjects = job.GetSpec().GetExpectedItems()
		}
		r.Encrypted = r.Encrypted || job.GetEncrypted()
	}}
}

// Queued records JobQueued or JobPostponed.
func Queued() Transition { return Transition{On: OnQueued} }

// Started records JobStart at the given time.
func Started(at time.Time) Transition {
	return Transition{On: OnStarted, effect: func(r *amrpipev1.JobRecord, _ time.Time) {
		if r.Started == nil {
			r.Started = timestamppb.New(at)
		}
	}}
}

// Progressed records SharePoint's counts (only ever growing).
func Progressed(st *amrpipev1.JobStats) Transition {
	return Transition{On: OnProgressed, effect: func(r *amrpipev1.JobRecord, _ time.Time) { counts(r, st) }}
}

// FileAnnounced records a package file SharePoint uploaded (a name checked by topology.ManifestFile).
func FileAnnounced(file string) Transition {
	return Transition{On: OnFileAnnounced, effect: func(r *amrpipev1.JobRecord, _ time.Time) {
		if !slices.Contains(r.FilesAnnounced, file) {
			r.FilesAnnounced = append(r.FilesAnnounced, file)
		}
	}}
}

// EndSeen records JobEnd at the given time with its counts.
func EndSeen(at time.Time, st *amrpipev1.JobStats) Transition {
	return Transition{On: OnEndSeen, effect: func(r *amrpipev1.JobRecord, _ time.Time) {
		counts(r, st)
		r.JobEndSeen = true
		if r.Ended == nil {
			r.Ended = timestamppb.New(at)
		}
	}}
}

// EndConfirmed records that the progress API showed nothing after the job's end: SharePoint has
// sent every event of the job, every JobEnd of a multi-URL job included.
func EndConfirmed() Transition {
	return Transition{On: OnEndConfirmed, effect: func(r *amrpipev1.JobRecord, _ time.Time) { r.EndConfirmed = true }}
}

// Malformed records an event of the job that did not decode: whatever it said is unknown, so the
// job cannot complete successfully.
func Malformed(reason string) Transition {
	return Transition{On: OnMalformed, effect: func(r *amrpipev1.JobRecord, _ time.Time) {
		r.MalformedEvents++
		if !slices.Contains(r.Errors, reason) {
			r.Errors = append(r.Errors, reason)
		}
		r.LastError = reason
	}}
}

// Cancelled records JobCancelled at the given time.
func Cancelled(at time.Time, reason string) Transition {
	return Transition{On: OnCancelled, effect: func(r *amrpipev1.JobRecord, _ time.Time) {
		fail(r, reason)
		if r.Ended == nil {
			r.Ended = timestamppb.New(at)
		}
	}}
}

// Failed records why the job failed. ended says that no more events will come (a stage gave
// up following it), so the parser may close it once its files are settled.
func Failed(reason string, ended bool) Transition {
	return Transition{On: OnFailed, effect: func(r *amrpipev1.JobRecord, now time.Time) {
		fail(r, reason)
		if ended && r.Ended == nil {
			r.Ended = timestamppb.New(now)
		}
	}}
}

// Note records a problem as the job's last error without changing its state.
func Note(reason string) Transition {
	return Transition{On: OnNoted, effect: func(r *amrpipev1.JobRecord, _ time.Time) { r.LastError = reason }}
}

// ParsedFile is what the parser folds into the job for one package file.
type ParsedFile struct {
	File string
	// Records is how many records were published; Counts the records by object type.
	Records int64
	Counts  map[string]int64
	// Bytes and Versions are the file sizes and earlier versions in the records published.
	Bytes, Versions int64
	// ProbeSubfolders and ProbeDirectFiles are what a probe job's file showed of the probed
	// folder (merged by URL across files: a folder's totals may come in another file).
	ProbeSubfolders  []*amrpipev1.FolderSize
	ProbeDirectFiles int64
}

// FileParsed folds a parsed file into the job, once: a file parsed or failed before is not
// counted again.
func FileParsed(p ParsedFile) Transition {
	return Transition{On: OnFileParsed, effect: func(r *amrpipev1.JobRecord, _ time.Time) {
		if Settled(r, p.File) {
			return
		}
		r.FilesParsed = append(r.FilesParsed, p.File)
		r.Records += p.Records
		r.Bytes += p.Bytes
		r.Versions += p.Versions
		if len(p.Counts) > 0 && r.Counts == nil {
			r.Counts = make(map[string]int64, len(p.Counts))
		}
		for t, n := range p.Counts {
			r.Counts[t] += n
		}
		mergeProbe(r, p.ProbeSubfolders, p.ProbeDirectFiles)
	}}
}

// FileFailed records a package file that cannot be read or parsed, once, with the reason
// ("<file>: <why>").
func FileFailed(file, reason string) Transition {
	return Transition{On: OnFileFailed, effect: func(r *amrpipev1.JobRecord, _ time.Time) {
		if Settled(r, file) {
			return
		}
		r.FilesFailed = append(r.FilesFailed, file)
		if !slices.Contains(r.Errors, reason) {
			r.Errors = append(r.Errors, reason)
		}
		r.LastError = reason
	}}
}

// Completed closes a job: DONE, or FAILED when something failed. A job completes only with
// evidence (Blocker): it is refused while SharePoint's end is not confirmed (for a job that could
// succeed) or not seen (for one that failed), or while an announced file is still waiting.
func Completed() Transition {
	return Transition{On: OnCompleted,
		guard: Blocker,
		to: func(r *amrpipev1.JobRecord) amrpipev1.JobState {
			if Bad(r) {
				return stateFailed
			}
			return stateDone
		},
	}
}

// Blocker says why a job cannot be completed yet ("" when it can): a job that could succeed
// needs its end confirmed by the progress API; a failed one needs its end (seen, or declared by
// the stage that gave up on it); either needs every announced file parsed or failed.
func Blocker(r *amrpipev1.JobRecord) string {
	switch {
	case Bad(r) && !Ended(r):
		return "SharePoint's end of the failed job has not been seen"
	case !Bad(r) && !r.GetEndConfirmed():
		return "SharePoint's progress API has not confirmed the job's end"
	}
	if w := Waiting(r); len(w) > 0 {
		return fmt.Sprintf("%d announced files are not parsed yet (%s)", len(w), strings.Join(w[:min(len(w), 3)], ", "))
	}
	return ""
}

// Ended reports a job whose event stream is over: JobEnd seen, or failed with an end (cancelled,
// or a stage gave up following it).
func Ended(r *amrpipev1.JobRecord) bool {
	return r.GetJobEndSeen() || r.GetEnded() != nil && r.GetState() == stateFailed
}

// Waiting returns the announced files neither parsed nor failed yet.
func Waiting(r *amrpipev1.JobRecord) []string {
	var out []string
	for _, f := range r.GetFilesAnnounced() {
		if !Settled(r, f) {
			out = append(out, f)
		}
	}
	return out
}

// Settled reports a file the job lists as parsed or failed.
func Settled(r *amrpipev1.JobRecord, file string) bool {
	return slices.Contains(r.GetFilesParsed(), file) || slices.Contains(r.GetFilesFailed(), file)
}

// Bad reports a job that cannot complete successfully: failed, an announced file failed, or an
// event did not decode. A failed file SharePoint never announced (a forged or early name) does
// not count until it is announced.
func Bad(r *amrpipev1.JobRecord) bool {
	if r.GetState() == stateFailed || r.GetMalformedEvents() > 0 {
		return true
	}
	for _, f := range r.GetFilesFailed() {
		if slices.Contains(r.GetFilesAnnounced(), f) {
			return true
		}
	}
	return false
}

// Final reports a job in a final state (DONE or FAILED).
func Final(r *amrpipev1.JobRecord) bool {
	return r.GetState() == stateDone || r.GetState() == stateFailed
}

// fail records a failure reason: the first becomes last_error for good, every one is listed.
func fail(r *amrpipev1.JobRecord, reason string) {
	if r.State != stateFailed || r.LastError == "" {
		r.LastError = reason
	}
	if !slices.Contains(r.Errors, reason) {
		r.Errors = append(r.Errors, reason)
	}
}

func counts(r *amrpipev1.JobRecord, st *amrpipev1.JobStats) {
	r.ObjectsProcessed = max(r.GetObjectsProcessed(), st.GetObjectsProcessed())
	r.ExpectedObjects = max(r.GetExpectedObjects(), st.GetTotalExpectedSpObjects())
}

// mergeProbe adds a file's probe findings, merging folders by URL: a folder first seen without
// totals takes them from a later file.
func mergeProbe(r *amrpipev1.JobRecord, folders []*amrpipev1.FolderSize, directFiles int64) {
	r.ProbeDirectFiles += directFiles
	have := make(map[string]*amrpipev1.FolderSize, len(r.GetProbeSubfolders()))
	for _, f := range r.GetProbeSubfolders() {
		have[strings.ToLower(f.GetUrl())] = f
	}
	for _, f := range folders {
		cur := have[strings.ToLower(f.GetUrl())]
		switch {
		case cur == nil:
			f = proto.Clone(f).(*amrpipev1.FolderSize) // the effect may run again
			r.ProbeSubfolders = append(r.ProbeSubfolders, f)
			have[strings.ToLower(f.GetUrl())] = f
		case cur.GetTotalsUnknown() && !f.GetTotalsUnknown():
			cur.Files, cur.Folders, cur.TotalsUnknown = f.GetFiles(), f.GetFolders(), false
		}
	}
}

// Diagram renders the lifecycle table as a Mermaid state diagram (docs/ARCHITECTURE.md holds it,
// and a test keeps the two equal): one arrow per state change, labelled with its transitions.
func Diagram() string {
	type edge struct{ from, to amrpipev1.JobState }
	labels := map[edge][]string{}
	var order []edge
	for _, r := range Rules() {
		if r.Ignore || r.To == Stay {
			continue
		}
		for _, from := range r.From {
			e := edge{from, r.To}
			if _, ok := labels[e]; !ok {
				order = append(order, e)
			}
			labels[e] = append(labels[e], string(r.On))
		}
	}
	// Completed leads to DONE, or to FAILED when a file failed.
	failedDone := edge{stateEnded, stateFailed}
	if _, ok := labels[failedDone]; !ok {
		order = append(order, failedDone)
	}
	labels[failedDone] = append(labels[failedDone], string(OnCompleted)+" (a file failed)")
	name := func(s amrpipev1.JobState) string {
		if s == stateNone {
			return "[*]"
		}
		return strings.ToUpper(StateName(s))
	}
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	for _, e := range order {
		fmt.Fprintf(&b, "    %s --> %s: %s\n", name(e.from), name(e.to), strings.Join(labels[e], ", "))
	}
	b.WriteString("    DONE --> [*]\n    FAILED --> [*]\n")
	return b.String()
}
