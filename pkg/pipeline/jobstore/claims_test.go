package jobstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestClaimThenOutcome: of concurrent claims of one spec exactly one is stored; the outcome then
// replaces the claim and keeps its attempts; a later outcome does not replace the first.
func TestClaimThenOutcome(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	stores := []*jobstore.Store{open(t, env), open(t, env)}
	const spec = "spec-claimed"
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			owner := string(rune('a' + i))
			_, err := stores[i%2].UpdateSubmission(ctx, spec, func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
				if cur != nil {
					return nil, jobstore.ErrNoChange
				}
				return &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Claim{Claim: &amrpipev1.SpecClaim{Owner: owner}}}, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sub, err := stores[0].Submission(ctx, spec)
	if err != nil || sub.GetClaim().GetOwner() == "" || jobstore.HasOutcome(sub) {
		t.Fatalf("submission %v, %v: want one claim", sub, err)
	}
	attempt := &amrpipev1.CreateAttempt{Number: 1, Outcome: amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_AMBIGUOUS, Reason: "SharePoint answered HTTP 502"}
	if _, err := stores[0].UpdateSubmission(ctx, spec, func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
		next := proto.Clone(cur).(*amrpipev1.Submission)
		next.Attempts = append(next.Attempts, attempt)
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
	job := &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Job{Job: &amrpipev1.SubmittedJob{JobId: "job-1"}}}
	got, err := stores[1].PutSubmission(ctx, spec, job)
	if err != nil || got.GetJob().GetJobId() != "job-1" || len(got.GetAttempts()) != 1 || !proto.Equal(got.GetAttempts()[0], attempt) {
		t.Fatalf("outcome over the claim: %v, %v; want the job with the claim's attempt", got, err)
	}
	again, err := stores[0].PutSubmission(ctx, spec, &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Failed{Failed: "late"}})
	if err != nil || again.GetJob().GetJobId() != "job-1" {
		t.Fatalf("a second outcome: %v, %v; want the first to stand", again, err)
	}
	if note := jobstore.SubmissionNote(again); !strings.Contains(note, "attempt 1: outcome unknown (SharePoint answered HTTP 502)") {
		t.Errorf("note %q", note)
	}
}

// TestAmbiguousAndOrphanMarks: marks live beside spec ids without being taken for them.
func TestAmbiguousAndOrphanMarks(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	s := open(t, env)
	if _, err := s.PutSubmission(ctx, "spec-a", &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Failed{Failed: "x"}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"spec-a", "spec-b"} {
		if err := s.MarkAmbiguous(ctx, &amrpipev1.AmbiguousSpec{SpecId: id, Since: timestamppb.New(t0)}); err != nil {
			t.Fatal(err)
		}
	}
	marks, err := s.AmbiguousSpecs(ctx)
	if err != nil || len(marks) != 2 {
		t.Fatalf("marks %v, %v; want 2", marks, err)
	}
	if err := s.UnmarkAmbiguous(ctx, "spec-b"); err != nil {
		t.Fatal(err)
	}
	if marks, err := s.AmbiguousSpecs(ctx); err != nil || len(marks) != 1 || marks[0].GetSpecId() != "spec-a" {
		t.Fatalf("marks after unmarking spec-b: %v, %v", marks, err)
	}
	o := &amrpipev1.OrphanJob{JobId: "0b6c1f0e-8d35-4c0a-9f8a-6f1a5d2e7c12", SpecId: "spec-a"}
	for i, want := range []bool{true, false} {
		if created, err := s.PutOrphan(ctx, o); err != nil || created != want {
			t.Fatalf("put orphan #%d: created %t, %v; want %t", i+1, created, err, want)
		}
	}
	if got, err := s.Orphan(ctx, o.GetJobId()); err != nil || got.GetSpecId() != "spec-a" {
		t.Fatalf("orphan %v, %v", got, err)
	}
	if got, err := s.Orphan(ctx, job); err != nil || got != nil {
		t.Fatalf("a job that is no orphan: %v, %v", got, err)
	}
	if sub, err := s.Submission(ctx, "spec-a"); err != nil || sub.GetFailed() != "x" {
		t.Fatalf("the spec's submission %v, %v", sub, err)
	}
}
