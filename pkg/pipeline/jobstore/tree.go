package jobstore

import (
	"context"
	"errors"
	"fmt"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// A plan's jobs form trees: a probe job's result is planned into jobs of its own (the probe's
// subfolders), whose specs name the probe's spec as their parent, and so on down. The job at a
// tree's root read a list's root and holds the list's change token; the jobs below it read parts
// of the same list. The token says "everything of the list up to here was exported", so it may be
// stored only once the whole tree ended DONE (pkg/sharepoint/sizing, "Incremental plans").

// maxTreeDepth bounds the walk up a tree (folders nest far less deep; a cycle would be a bug).
const maxTreeDepth = 64

// TreeRoot returns the job at the root of r's planning tree: r itself when its spec names no
// parent, else the job of its parent spec, and so on up. It returns nil when a job up the tree
// cannot be found (its spec was re-planned or dead-lettered, or its record is gone): then nothing
// can be said about the tree.
func (s *Store) TreeRoot(ctx context.Context, r *amrpipev1.JobRecord) (*amrpipev1.JobRecord, error) {
	for range maxTreeDepth {
		parent := r.GetSpec().GetParentSpecId()
		if parent == "" {
			return r, nil
		}
		up, err := s.jobOfSpec(ctx, parent)
		if err != nil || up == nil {
			return nil, err
		}
		r = up
	}
	return nil, fmt.Errorf("job %s: planning tree deeper than %d", r.GetJobId(), maxTreeDepth)
}

// TreeDone reports whether the job r and every job planned below it (from its probe result, and
// from theirs) ended DONE. A job whose id is done counts as DONE whatever its record says (the
// caller is completing it). It is false while a probe's result is not planned yet, a spec below
// has no job (not submitted yet, re-planned or dead-lettered), or a job below is live or FAILED.
func (s *Store) TreeDone(ctx context.Context, r *amrpipev1.JobRecord, done string) (bool, error) {
	return s.treeDone(ctx, r, done, 0)
}

func (s *Store) treeDone(ctx context.Context, r *amrpipev1.JobRecord, done string, depth int) (bool, error) {
	if depth > maxTreeDepth {
		return false, fmt.Errorf("job %s: planning tree deeper than %d", r.GetJobId(), maxTreeDepth)
	}
	if r.GetJobId() != done && r.GetState() != amrpipev1.JobState_JOB_STATE_DONE {
		return false, nil
	}
	spec := r.GetSpec()
	if !spec.GetProbe() {
		return true, nil
	}
	p, err := s.Planning(ctx, ProbeIndex(spec.GetSpecId()))
	switch {
	case err != nil:
		return false, err
	case p == nil:
		// The planner plans a probe's subfolders only: without any, nothing is planned below it.
		return len(r.GetProbeSubfolders()) == 0, nil
	case p.Index.GetFailed() != "":
		return false, nil
	}
	for _, child := range p.Specs {
		c, err := s.jobOfSpec(ctx, child.GetSpecId())
		if err != nil || c == nil {
			return false, err
		}
		if ok, err := s.treeDone(ctx, c, done, depth+1); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// jobOfSpec returns the record of the job SharePoint created for a spec, or nil when there is
// none (not submitted yet, re-planned, dead-lettered, or its record is gone).
func (s *Store) jobOfSpec(ctx context.Context, specID string) (*amrpipev1.JobRecord, error) {
	sub, err := s.Submission(ctx, specID)
	if err != nil || sub.GetJob() == nil {
		return nil, err
	}
	rec, _, err := s.Job(ctx, sub.GetJob().GetJobId())
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return rec, err
}
