package devstack

import (
	"context"
	"fmt"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
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

func terminal(st amrpipev1.JobState) bool {
	return st == amrpipev1.JobState_JOB_STATE_DONE || st == amrpipev1.JobState_JOB_STATE_FAILED
}

// Idle reports whether the pipeline has nothing left to do: at least one job exists, every job
// is done or failed, and no consumer has messages pending or unacknowledged (a probe result
// waiting for the planner, a spec for the submitter, a manifest for the parser...).
func (s *Stack) Idle(ctx context.Context) (bool, string, error) {
	jobs, err := s.Jobs(ctx)
	if err != nil {
		return false, "", err
	}
	if len(jobs) == 0 {
		return false, "no job yet", nil
	}
	for _, j := range jobs {
		if !terminal(j.GetState()) {
			return false, fmt.Sprintf("job %s is %s", j.GetJobId(), j.GetState()), nil
		}
	}
	for _, name := range []string{topology.ConsumerPlanner, topology.ConsumerSubmitter, topology.ConsumerRelay,
		topology.ConsumerDecryptor, topology.ConsumerParser, topology.ConsumerParserEnd} {
		spec, err := topology.Consumer(name)
		if err != nil {
			return false, "", err
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		c, err := s.JS.Consumer(cctx, spec.Stream, name)
		if err != nil {
			return false, "", fmt.Errorf("consumer %s: %w", name, err)
		}
		info, err := c.Info(cctx)
		if err != nil {
			return false, "", fmt.Errorf("consumer %s info: %w", name, err)
		}
		if info.NumPending > 0 || info.NumAckPending > 0 {
			return false, fmt.Sprintf("consumer %s has %d pending, %d unacknowledged", name, info.NumPending, info.NumAckPending), nil
		}
	}
	return true, "", nil
}

// WaitIdle waits until Idle holds twice in a row, a little apart (a probe result may be in flight
// between two stages at the first look), or ctx ends.
func (s *Stack) WaitIdle(ctx context.Context) error {
	streak := 0
	last := ""
	for {
		idle, why, err := s.Idle(ctx)
		if err != nil {
			return err
		}
		if idle {
			streak++
			if streak == 2 {
				return nil
			}
		} else {
			streak, last = 0, why
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pipeline not idle (%s): %w", last, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Object is one object a plan must yield downstream.
type Object struct{ Type, ID string }

// ContentTypes are the SPObject types compared between the ground truth and the records: the
// tenant's content. Role definitions and role assignments are per job by nature.
var ContentTypes = map[string]bool{
	string(tenant.TypeList): true, string(tenant.TypeDocumentLibrary): true, string(tenant.TypeFolder): true,
	string(tenant.TypeFile): true, string(tenant.TypeListItem): true,
}

// Truth is what a plan over targets (server-relative or absolute URLs) must yield downstream, read
// straight from the simulated tenant: every content object under the targets, once.
func (s *Stack) Truth(ctx context.Context, targets []string, opts tenant.ReadOptions) (map[Object]int, error) {
	var ts []tenant.Target
	for _, u := range targets {
		t, err := s.Tenant.Resolve(u)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", u, err)
		}
		ts = append(ts, t)
	}
	out := map[Object]int{}
	err := s.Tenant.Walk(ctx, ts, opts, func(o *tenant.Object) error {
		if ContentTypes[string(o.Type)] {
			out[Object{string(o.Type), o.ID}]++
		}
		return nil
	})
	return out, err
}
