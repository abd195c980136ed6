package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/runreport"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// waitPlans follows plans until each is complete: a line on stderr whenever a plan's counts
// change, then the final statuses on stdout. It returns ErrIncomplete when a plan ended
// incomplete, and the context's error when interrupted.
func waitPlans(cmd *cobra.Command, js jetstream.JetStream, ids []string, every time.Duration) error {
	ctx := cmd.Context()
	store, err := jobstore.Open(ctx, js, time.Now)
	if err != nil {
		return err
	}
	final := make(map[string]*amrpipev1.PlanStatus, len(ids))
	last := map[string]string{}
	for {
		for _, id := range ids {
			if final[id] != nil {
				continue
			}
			st, err := store.PlanStatus(ctx, id)
			line := ""
			switch {
			case errors.Is(err, jobstore.ErrNotFound):
				line = fmt.Sprintf("plan %s: waiting for the planner", id)
			case err != nil:
				return err
			default:
				line = progressLine(st)
				if st.GetComplete() {
					final[id] = st
				}
			}
			if line != last[id] {
				fmt.Fprintln(cmd.ErrOrStderr(), line)
				last[id] = line
			}
		}
		if len(final) == len(ids) {
			break
		}
		if err := backoff.Sleep(ctx, every); err != nil {
			return err
		}
	}
	out := make([]*amrpipev1.PlanStatus, len(ids))
	var failed []string
	for i, id := range ids {
		out[i] = final[id]
		if out[i].GetFailed() {
			failed = append(failed, id)
		}
	}
	if err := render(cmd, out, func(w io.Writer) error {
		for _, st := range out {
			if err := writePlanStatus(w, st); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("plan %v: %w", failed, ErrIncomplete)
	}
	return nil
}

// progressLine is one plan's progress in a line.
func progressLine(st *amrpipev1.PlanStatus) string {
	return fmt.Sprintf("plan %s: %s; specs %d (%d pending, %d dead-lettered); jobs %d live, %d done, %d failed; %d objects, %d records",
		st.GetPlanId(), planState(st), len(st.GetSpecs()), st.GetSpecsPending(), st.GetSpecsFailed(), st.GetJobsLive(), st.GetJobsDone(),
		st.GetJobsFailed(), st.GetObjects(), st.GetRecords())
}

// planState is a plan's state in words, as the run report says it.
func planState(st *amrpipev1.PlanStatus) string {
	return runreport.PlanState(st.GetComplete(), st.GetFailed())
}
