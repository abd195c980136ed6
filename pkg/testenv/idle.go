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
	idle, why, _, err = look(ctx, js, store)
	return idle, why, err
}

// look is Idle, and how many job records it read. The consumers come first: a look at them costs
// six requests, a look at the job records one message per job (ten thousand in the scale
// benchmark), read only when no stage has work queued.
func look(ctx context.Context, js jetstream.JetStream, store *jobstore.Store) (idle bool, why string, jobs int, err error) {
	for _, name := range []string{topology.ConsumerPlanner, topology.ConsumerSubmitter, topology.ConsumerRelay,
		topology.ConsumerDecryptor, topology.ConsumerParser, topology.ConsumerParserEnd} {
		spec, err := topology.Consumer(name)
		if err != nil {
			return false, "", 0, err
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		c, err := js.Consumer(cctx, spec.Stream, name)
		if err != nil {
			return false, "", 0, fmt.Errorf("consumer %s: %w", name, err)
		}
		info, err := c.Info(cctx)
		if err != nil {
			return false, "", 0, fmt.Errorf("consumer %s info: %w", name, err)
		}
		if info.NumPending > 0 || info.NumAckPending > 0 {
			return false, fmt.Sprintf("consumer %s has %d pending, %d unacknowledged", name, info.NumPending, info.NumAckPending), 0, nil
		}
	}
	jctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	recs, err := store.Jobs(jctx)
	if err != nil {
		return false, "", 0, err
	}
	if len(recs) == 0 {
		return false, "no job yet", 0, nil
	}
	for _, j := range recs {
		if !jobstore.Final(j) {
			return false, fmt.Sprintf("job %s is %s", j.GetJobId(), j.GetState()), len(recs), nil
		}
	}
	return true, "", len(recs), nil
}

// WaitIdle waits until Idle holds twice in a row, a little apart (a probe result may be in flight
// between two stages at the first look), or ctx ends. A look that fails counts as not idle: on a
// cluster a look may meet a leader election (no responders, a lost request), and ctx bounds the
// wait; the last failure is in the error then. Looks are 300 ms apart, or a millisecond per job
// record the last one read, so that watching ten thousand jobs does not become the load measured.
func WaitIdle(ctx context.Context, js jetstream.JetStream, store *jobstore.Store) error {
	streak := 0
	last := ""
	for {
		idle, why, jobs, err := look(ctx, js, store)
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
		case <-time.After(max(300*time.Millisecond, time.Duration(jobs)*time.Millisecond)):
		}
	}
}
