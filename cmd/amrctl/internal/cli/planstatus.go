package cli

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// ErrIncomplete is the error of `plan status` for a plan that ended incomplete: a planning or a
// spec was dead-lettered, or a job failed.
var ErrIncomplete = errors.New("the plan is incomplete")

func planStatusCommand(connect connectFunc) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status PLAN_ID",
		Short: "What became of a plan: its specs, jobs, dead letters; fails when the plan is incomplete",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				if err := cmd.Flags().Set(outputFlag, OutputJSON); err != nil {
					return err
				}
			}
			store, closeConn, err := openStore(cmd.Context(), connect)
			if err != nil {
				return err
			}
			defer closeConn()
			st, err := store.PlanStatus(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := render(cmd, st, func(w io.Writer) error { return writePlanStatus(w, st) }); err != nil {
				return err
			}
			if st.GetFailed() {
				return fmt.Errorf("plan %s: %w", st.GetPlanId(), ErrIncomplete)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	_ = cmd.Flags().MarkDeprecated("json", "use -o json")
	return cmd
}

// writePlanStatus prints a plan's totals, then one line per spec.
func writePlanStatus(out io.Writer, st *amrpipev1.PlanStatus) error {
	fmt.Fprintf(out, "plan %s: %s\n", st.GetPlanId(), planState(st))
	fmt.Fprintf(out, "specs %d: %d pending, %d dead-lettered; jobs: %d live, %d done, %d failed; %d objects, %d records\n",
		len(st.GetSpecs()), st.GetSpecsPending(), st.GetSpecsFailed(), st.GetJobsLive(), st.GetJobsDone(), st.GetJobsFailed(),
		st.GetObjects(), st.GetRecords())
	for _, r := range st.GetPlanningFailed() {
		fmt.Fprintf(out, "planning dead-lettered: %s\n", r)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SPEC\tJOB\tSTATE\tOBJECTS\tRECORDS\tERROR / NOTE")
	for _, s := range st.GetSpecs() {
		job, state := s.GetJobId(), jobstore.StateName(s.GetState())
		switch {
		case job == "" && s.GetReplanId() != "":
			job, state = "re-planned as "+s.GetReplanId(), "-"
		case job == "" && s.GetError() != "":
			job, state = "-", "dead-lettered"
		case job == "":
			job, state = "-", "pending"
		}
		text := s.GetError()
		if n := s.GetNote(); n != "" && text != "" {
			text += "; " + n
		} else if n != "" {
			text = n
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", s.GetSpecId(), job, state, s.GetObjects(), s.GetRecords(), text)
	}
	return w.Flush()
}
