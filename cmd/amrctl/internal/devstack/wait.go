package devstack

import (
	"context"
	"time"

	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// Jobs returns every job record. A read that fails is made again, up to jobsAttempts times: on a
// cluster a pull sent while a leader is elected is lost, and the read gives up on it after 5 s
// (bus.ReadStored) for its caller to ask again.
func (s *Stack) Jobs(ctx context.Context) ([]*amrpipev1.JobRecord, error) {
	var err error
	for range jobsAttempts {
		var jobs []*amrpipev1.JobRecord
		if jobs, err = s.jobsOnce(ctx); err == nil || ctx.Err() != nil {
			return jobs, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil, err
}

// jobsAttempts bounds Jobs's reads: enough to outlast a leader election, few enough that a
// store that cannot be read fails a test in under a minute.
const jobsAttempts = 4

func (s *Stack) jobsOnce(ctx context.Context) ([]*amrpipev1.JobRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return s.Store.Jobs(ctx)
}

// callTimeout bounds each look at the pipeline's state, so a reply lost on a busy connection costs
// one tick, not the run.
const callTimeout = 10 * time.Second

// Idle reports whether the pipeline has nothing left to do (testenv.Idle).
func (s *Stack) Idle(ctx context.Context) (bool, string, error) {
	return testenv.Idle(ctx, s.JS, s.Store)
}

// WaitIdle waits until the pipeline is idle (testenv.WaitIdle) or ctx ends.
func (s *Stack) WaitIdle(ctx context.Context) error {
	return testenv.WaitIdle(ctx, s.JS, s.Store)
}

// Truth is what a plan over targets must yield downstream, read from the stack's tenant
// (testenv.Truth).
func (s *Stack) Truth(ctx context.Context, targets []string, opts tenant.ReadOptions) (map[testenv.Object]int, error) {
	return testenv.Truth(ctx, s.Tenant, targets, opts, nil)
}
