package devstack

import (
	"context"
	"time"

	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// Jobs returns every job record.
func (s *Stack) Jobs(ctx context.Context) ([]*amrpipev1.JobRecord, error) {
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
