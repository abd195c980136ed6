package jobstore

import (
	"context"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Update lets this package's tests write records directly (compare-and-set tests, and records in
// a given state for the lifecycle table); nothing else may.
func (s *Store) Update(ctx context.Context, jobID string, fn func(*amrpipev1.JobRecord) error) (*amrpipev1.JobRecord, error) {
	return s.update(ctx, jobID, fn)
}
