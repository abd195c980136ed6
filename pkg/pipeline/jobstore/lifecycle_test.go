package jobstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// The allowed and refused transitions, written by hand from the design (not derived from
// jobstore.Rules): for each transition, what it does from each state, in the order
// none, submitted, queued, running, ended, done, failed. A state name is where the job goes;
// "=" keeps the state (the effect may still change fields); "-" changes nothing at all; "x" is
// refused.
var matrix = map[jobstore.Kind]string{
	//                        none      submitted queued   running  ended    done  failed
	jobstore.OnSubmitted:     "submitted =        =        =        =        =     =",
	jobstore.OnQueued:        "x         queued   -        -        -        x     -",
	jobstore.OnStarted:       "x         running  running  =        =        x     -",
	jobstore.OnProgressed:    "x         running  running  =        =        x     =",
	jobstore.OnFileAnnounced: "x         running  running  =        =        x     =",
	jobstore.OnEndSeen:       "x         ended    ended    ended    =        -     =",
	jobstore.OnEndConfirmed:  "x         x        x        x        =        -     =",
	jobstore.OnCancelled:     "x         failed   failed   failed   failed   x     =",
	jobstore.OnFailed:        "x         failed   failed   failed   failed   x     =",
	jobstore.OnNoted:         "x         =        =        =        =        =     =",
	jobstore.OnMalformed:     "x         =        =        =        =        x     =",
	jobstore.OnFileParsed:    "x         =        =        =        =        x     =",
	jobstore.OnFileFailed:    "x         =        =        =        =        x     =",
	jobstore.OnCompleted:     "x         x        x        x        x        -     =", // from ended: the guard, below
}

var states = []amrpipev1.JobState{
	amrpipev1.JobState_JOB_STATE_UNSPECIFIED, amrpipev1.JobState_JOB_STATE_SUBMITTED, amrpipev1.JobState_JOB_STATE_QUEUED,
	amrpipev1.JobState_JOB_STATE_RUNNING, amrpipev1.JobState_JOB_STATE_ENDED, amrpipev1.JobState_JOB_STATE_DONE,
	amrpipev1.JobState_JOB_STATE_FAILED,
}

var at = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// transitions gives one transition of each kind, each with an effect that changes a field.
func transitions() map[jobstore.Kind]jobstore.Transition {
	return map[jobstore.Kind]jobstore.Transition{
		jobstore.OnSubmitted: jobstore.Accepted(&amrpipev1.SubmittedJob{JobId: "j", Spec: &amrpipev1.JobSpec{SpecId: "s"},
			Container: "c", ChangeToken: "t", Encrypted: true, Submitted: timestamppb.New(at)}),
		jobstore.OnQueued:        jobstore.Queued(),
		jobstore.OnStarted:       jobstore.Started(at),
		jobstore.OnProgressed:    jobstore.Progressed(&amrpipev1.JobStats{ObjectsProcessed: 99}),
		jobstore.OnFileAnnounced: jobstore.FileAnnounced("Manifest9.xml"),
		jobstore.OnEndSeen:       jobstore.EndSeen(at, &amrpipev1.JobStats{ObjectsProcessed: 100}),
		jobstore.OnEndConfirmed:  jobstore.EndConfirmed(),
		jobstore.OnMalformed:     jobstore.Malformed("an event did not decode"),
		jobstore.OnCancelled:     jobstore.Cancelled(at, "cancelled by the user"),
		jobstore.OnFailed:        jobstore.Failed("the relay lost the job", true),
		jobstore.OnNoted:         jobstore.Note("a malformed event was skipped"),
		jobstore.OnFileParsed:    jobstore.FileParsed(jobstore.ParsedFile{File: "Manifest.xml", Records: 5, Counts: map[string]int64{"SPFile": 5}}),
		jobstore.OnFileFailed:    jobstore.FileFailed("Manifest.xml", "Manifest.xml: parse error"),
		jobstore.OnCompleted:     jobstore.Completed(),
	}
}

// record is a job in state st whose end was seen (for ended, done, failed) and whose one
// announced file is parsed, so that Completed's guard holds where the state allows it.
func record(st amrpipev1.JobState) *amrpipev1.JobRecord {
	if st == amrpipev1.JobState_JOB_STATE_UNSPECIFIED {
		return &amrpipev1.JobRecord{}
	}
	r := &amrpipev1.JobRecord{JobId: "j", State: st, Spec: &amrpipev1.JobSpec{SpecId: "s"},
		FilesAnnounced: []string{"Manifest.xml"}, FilesParsed: []string{"Manifest.xml"}}
	if st >= amrpipev1.JobState_JOB_STATE_ENDED {
		r.JobEndSeen, r.Ended = true, timestamppb.New(at)
	}
	if st == amrpipev1.JobState_JOB_STATE_ENDED {
		r.EndConfirmed = false // EndConfirmed's own row needs it unset; Completed's is tested below
	}
	return r
}

func TestLifecycleMatrix(t *testing.T) {
	env := testenv.StartJetStream(t)
	store, err := jobstore.Open(context.Background(), env.JS, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	ts := transitions()
	if len(ts) != len(matrix) || len(jobstore.Rules()) == 0 {
		t.Fatalf("%d transitions, %d matrix rows", len(ts), len(matrix))
	}
	n := 0
	for kind, row := range matrix {
		want := strings.Fields(row)
		if len(want) != len(states) {
			t.Fatalf("%s: %d cells", kind, len(want))
		}
		for i, from := range states {
			n++
			jobID := fmt.Sprintf("job-%d", n)
			t.Run(fmt.Sprintf("%s from %s", kind, jobstore.StateName(from)), func(t *testing.T) {
				ctx := context.Background()
				before := record(from)
				if from != amrpipev1.JobState_JOB_STATE_UNSPECIFIED {
					before.JobId = jobID
					if _, err := store.Update(ctx, jobID, func(r *amrpipev1.JobRecord) error {
						proto.Reset(r)
						proto.Merge(r, before)
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				stored, _, _ := store.Job(ctx, jobID)
				got, err := store.Fire(ctx, jobID, ts[kind])
				switch want[i] {
				case "x":
					var re *jobstore.RefusedError
					if !errors.As(err, &re) || !errors.Is(err, jobstore.ErrRefused) || re.On != kind || re.From != from {
						t.Fatalf("err = %v, want a refusal of %s from %s", err, kind, jobstore.StateName(from))
					}
					after, _, _ := store.Job(ctx, jobID)
					if !proto.Equal(after, stored) {
						t.Fatalf("a refused transition changed the record:\n%v\nwas\n%v", after, stored)
					}
				case "-":
					if err != nil {
						t.Fatal(err)
					}
					if !proto.Equal(got, stored) {
						t.Fatalf("a no-op transition changed the record:\n%v\nwas\n%v", got, stored)
					}
				case "=":
					if err != nil {
						t.Fatal(err)
					}
					if got.GetState() != from {
						t.Fatalf("state %s, want it kept at %s", jobstore.StateName(got.GetState()), jobstore.StateName(from))
					}
				default:
					if err != nil {
						t.Fatal(err)
					}
					if s := jobstore.StateName(got.GetState()); s != want[i] {
						t.Fatalf("state %s, want %s", s, want[i])
					}
				}
			})
		}
	}
}

// TestLifecycleGuardsAndEffects covers what the matrix cannot: the guard of Completed, the
// outcome of a job with a failed file, effects applied once, and the first failure reason kept.
func TestLifecycleGuardsAndEffects(t *testing.T) {
	env := testenv.StartJetStream(t)
	store, err := jobstore.Open(context.Background(), env.JS, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	submitted := jobstore.Accepted(&amrpipev1.SubmittedJob{JobId: "g", Spec: &amrpipev1.JobSpec{SpecId: "s"}, Encrypted: true})
	steps := []struct {
		name  string
		fire  []jobstore.Transition
		check func(r *amrpipev1.JobRecord, err error) string
	}{
		{"submitted, encrypted", []jobstore.Transition{submitted}, func(r *amrpipev1.JobRecord, err error) string {
			if err != nil || !r.GetEncrypted() || r.GetState() != amrpipev1.JobState_JOB_STATE_SUBMITTED {
				return fmt.Sprintf("%v %v", r, err)
			}
			return ""
		}},
		{"two files announced, the same one twice", []jobstore.Transition{jobstore.FileAnnounced("Manifest.xml"),
			jobstore.FileAnnounced("UserGroup.xml"), jobstore.FileAnnounced("Manifest.xml")}, func(r *amrpipev1.JobRecord, err error) string {
			if err != nil || len(r.GetFilesAnnounced()) != 2 {
				return fmt.Sprintf("announced %v, %v", r.GetFilesAnnounced(), err)
			}
			return ""
		}},
		{"completed before the end is refused", []jobstore.Transition{jobstore.Completed()}, func(r *amrpipev1.JobRecord, err error) string {
			if !errors.Is(err, jobstore.ErrRefused) {
				return fmt.Sprint(err)
			}
			return ""
		}},
		{"end seen", []jobstore.Transition{jobstore.EndSeen(at, &amrpipev1.JobStats{ObjectsProcessed: 7, TotalExpectedSpObjects: 7})},
			func(r *amrpipev1.JobRecord, err error) string {
				if err != nil || r.GetState() != amrpipev1.JobState_JOB_STATE_ENDED || r.GetObjectsProcessed() != 7 {
					return fmt.Sprintf("%v %v", r, err)
				}
				return ""
			}},
		{"completed before the progress API confirmed the end is refused", []jobstore.Transition{jobstore.Completed()}, func(r *amrpipev1.JobRecord, err error) string {
			if !errors.Is(err, jobstore.ErrRefused) || !strings.Contains(err.Error(), "not confirmed") {
				return fmt.Sprint(err)
			}
			return ""
		}},
		{"end confirmed", []jobstore.Transition{jobstore.EndConfirmed()}, func(r *amrpipev1.JobRecord, err error) string {
			if err != nil || !r.GetEndConfirmed() || r.GetState() != amrpipev1.JobState_JOB_STATE_ENDED {
				return fmt.Sprintf("%v %v", r, err)
			}
			return ""
		}},
		{"completed with a file waiting is refused, naming it", []jobstore.Transition{jobstore.Completed()}, func(r *amrpipev1.JobRecord, err error) string {
			if !errors.Is(err, jobstore.ErrRefused) || !strings.Contains(err.Error(), "Manifest.xml") {
				return fmt.Sprint(err)
			}
			return ""
		}},
		{"a failed file SharePoint never announced changes nothing for the job", []jobstore.Transition{
			jobstore.FileFailed("Forged.xml", "Forged.xml: blob not found")}, func(r *amrpipev1.JobRecord, err error) string {
			if err != nil || jobstore.Bad(r) {
				return fmt.Sprintf("bad %v: %v %v", jobstore.Bad(r), r, err)
			}
			return ""
		}},
		{"a file parsed twice counts once", []jobstore.Transition{
			jobstore.FileParsed(jobstore.ParsedFile{File: "Manifest.xml", Records: 3, Counts: map[string]int64{"SPFile": 3}, Bytes: 300, Versions: 2}),
			jobstore.FileParsed(jobstore.ParsedFile{File: "Manifest.xml", Records: 3, Counts: map[string]int64{"SPFile": 3}, Bytes: 300, Versions: 2})},
			func(r *amrpipev1.JobRecord, err error) string {
				if err != nil || r.GetRecords() != 3 || r.GetCounts()["SPFile"] != 3 || r.GetBytes() != 300 || r.GetVersions() != 2 {
					return fmt.Sprintf("%v %v", r, err)
				}
				return ""
			}},
		{"a failed file", []jobstore.Transition{jobstore.FileFailed("UserGroup.xml", "UserGroup.xml: parse error at byte 9")},
			func(r *amrpipev1.JobRecord, err error) string {
				if err != nil || len(r.GetFilesFailed()) != 2 || r.GetLastError() != "UserGroup.xml: parse error at byte 9" || !jobstore.Bad(r) {
					return fmt.Sprintf("%v %v", r, err)
				}
				return ""
			}},
		{"completed with a failed file ends failed", []jobstore.Transition{jobstore.Completed()}, func(r *amrpipev1.JobRecord, err error) string {
			if err != nil || r.GetState() != amrpipev1.JobState_JOB_STATE_FAILED {
				return fmt.Sprintf("%v %v", r, err)
			}
			return ""
		}},
		{"a later failure keeps the first reason as the last error and lists all", []jobstore.Transition{jobstore.Failed("relay gave up", true)},
			func(r *amrpipev1.JobRecord, err error) string {
				if err != nil || r.GetLastError() != "UserGroup.xml: parse error at byte 9" || len(r.GetErrors()) != 3 {
					return fmt.Sprintf("%v %v", r, err)
				}
				return ""
			}},
	}
	for _, st := range steps {
		r, err := store.Fire(ctx, "g", st.fire...)
		if msg := st.check(r, err); msg != "" {
			t.Fatalf("%s: %s", st.name, msg)
		}
	}
}
