package jobstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// A spec's entry in amr_submissions (key: the spec id) goes from nothing to a claim (a submitter
// holds the spec: SpecClaim, created by compare-and-set before the first create call) to its
// outcome (the job, the re-plan, or why it failed). Every change is a compare-and-set on the
// entry's revision (UpdateSubmission), so two deliveries of one spec never both believe they
// hold it, and an outcome, once stored, stands. Besides spec ids (letters, digits, '-' and '_'),
// the bucket holds two kinds of marks, keyed with a '.' no spec id has:
//
//   - "ambiguous.<specID>" (AmbiguousSpec): a create call of the spec had an unknown outcome; the
//     submitter's reconciler tries the spec's key on job folders of the manifest container nobody
//     knows, until the mark's `until`.
//   - "orphan.<jobID>" (OrphanJob): a job created for a spec that has another outcome; the
//     submitter's janitor deletes its manifest blobs.

// AmbiguousKey is the amr_submissions key of a spec's ambiguous mark.
func AmbiguousKey(specID string) string { return ambiguousPrefix + specID }

// OrphanKey is the amr_submissions key of an orphan job's mark.
func OrphanKey(jobID string) string { return orphanPrefix + jobID }

const (
	ambiguousPrefix = "ambiguous."
	orphanPrefix    = "orphan."
)

// UpdateSubmission applies fn to a spec's stored submission (nil when there is none) and stores
// what it returns if nobody wrote in between, else reads again and repeats. fn may run several
// times and must not keep what it is given; it returns ErrNoChange to write nothing.
// UpdateSubmission returns the stored submission (the current one after ErrNoChange).
func (s *Store) UpdateSubmission(ctx context.Context, specID string, fn func(*amrpipev1.Submission) (*amrpipev1.Submission, error)) (*amrpipev1.Submission, error) {
	return casUpdate(ctx, s.submissions, specID, "submission of spec "+specID, func() *amrpipev1.Submission { return &amrpipev1.Submission{} },
		func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
			next, err := fn(cur)
			if errors.Is(err, ErrNoChange) {
				return cur, err
			}
			return next, err
		})
}

// HasOutcome reports a submission that says what became of its spec (a job, a re-plan, a
// failure), as opposed to none or a claim.
func HasOutcome(sub *amrpipev1.Submission) bool {
	return sub.GetJob() != nil || sub.GetReplan() != nil || sub.GetFailed() != ""
}

// withOutcome is sub's outcome stored over cur: cur's attempts and orphans are kept.
func withOutcome(cur, sub *amrpipev1.Submission) *amrpipev1.Submission {
	next := proto.Clone(sub).(*amrpipev1.Submission)
	if len(next.Attempts) == 0 {
		next.Attempts = cur.GetAttempts()
	}
	if len(next.Orphans) == 0 {
		next.Orphans = cur.GetOrphans()
	}
	return next
}

// MarkAmbiguous stores (or replaces) a spec's ambiguous mark.
func (s *Store) MarkAmbiguous(ctx context.Context, m *amrpipev1.AmbiguousSpec) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode ambiguous mark of spec %s: %w", m.GetSpecId(), err)
	}
	if _, err := s.submissions.Put(ctx, AmbiguousKey(m.GetSpecId()), data); err != nil {
		return fmt.Errorf("mark spec %s ambiguous: %w", m.GetSpecId(), err)
	}
	return nil
}

// AmbiguousSpecs returns every spec's ambiguous mark.
func (s *Store) AmbiguousSpecs(ctx context.Context) ([]*amrpipev1.AmbiguousSpec, error) {
	lister, err := s.submissions.ListKeysFiltered(ctx, ambiguousPrefix+"*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list ambiguous specs: %w", err)
	}
	var keys []string
	seen := map[string]bool{} // the lister may repeat a key written meanwhile
	for k := range lister.Keys() {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	var out []*amrpipev1.AmbiguousSpec
	for _, k := range keys {
		m := &amrpipev1.AmbiguousSpec{}
		_, err := getProto(ctx, s.submissions, k, m)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// UnmarkAmbiguous removes a spec's ambiguous mark.
func (s *Store) UnmarkAmbiguous(ctx context.Context, specID string) error {
	if err := s.submissions.Delete(ctx, AmbiguousKey(specID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("unmark spec %s: %w", specID, err)
	}
	return nil
}

// PutOrphan stores an orphan job's mark once; created is false when it was stored before.
func (s *Store) PutOrphan(ctx context.Context, o *amrpipev1.OrphanJob) (created bool, err error) {
	data, err := proto.Marshal(o)
	if err != nil {
		return false, fmt.Errorf("encode orphan job %s: %w", o.GetJobId(), err)
	}
	_, err = s.submissions.Create(ctx, OrphanKey(o.GetJobId()), data)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("store orphan job %s: %w", o.GetJobId(), err)
	}
	return true, nil
}

// Orphan returns an orphan job's mark, or nil when the job is not known as one.
func (s *Store) Orphan(ctx context.Context, jobID string) (*amrpipev1.OrphanJob, error) {
	o := &amrpipev1.OrphanJob{}
	_, err := getProto(ctx, s.submissions, OrphanKey(jobID), o)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return o, nil
}
