package testenv

// This file tells when the pipeline has nothing left to do.

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// callTimeout bounds each look at the pipeline's state, so a reply lost on a busy connection costs
// one tick, not the run.
const callTimeout = 10 * time.Second

// Idle reports whether the pipeline has nothing left to do: at least one job exists, every job
// is done or failed, and no consumer has messages pending or unacknowledged (a probe result
// waiting for the planner, a spec for the submitter, a manifest for the parser...). When it is
// not, why says what is still going on.
func Idle(ctx context.Context, js jetstream.JetStream, store *jobstore.Store) (idle bool, why string, err error) {
	jctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	jobs, err := store.Jobs(jctx)
	if err != nil {
		return false, "", err
	}
	if len(jobs) == 0 {
		return false, "no job yet", nil
	}
	for _, j := range jobs {
		if !jobstore.Final(j) {
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
		c, err := js.Consumer(cctx, spec.Stream, name)
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
// between two stages at the first look), or ctx ends. A look that fails counts as not idle: on a
// cluster a look may meet a leader election (no responders, a lost request), and ctx bounds the
// wait; the last failure is in the error then.
func WaitIdle(ctx context.Context, js jetstream.JetStream, store *jobstore.Store) error {
	streak := 0
	last := ""
	for {
		idle, why, err := Idle(ctx, js, store)
		if err != nil {
			idle, why = false, "a look failed: "+err.Error()
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
