package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// planSummary is one plan of `plan list`: its status without the per-spec rows.
type planSummary struct {
	PlanID         string `json:"plan_id"`
	State          string `json:"state"`
	Complete       bool   `json:"complete"`
	Failed         bool   `json:"failed"`
	Specs          int    `json:"specs"`
	SpecsPending   int64  `json:"specs_pending"`
	SpecsFailed    int64  `json:"specs_dead_lettered"`
	PlanningFailed int    `json:"plannings_dead_lettered"`
	JobsLive       int64  `json:"jobs_live"`
	JobsDone       int64  `json:"jobs_done"`
	JobsFailed     int64  `json:"jobs_failed"`
	Objects        int64  `json:"objects"`
	Records        int64  `json:"records"`
}

func summarizePlan(st *amrpipev1.PlanStatus) planSummary {
	return planSummary{PlanID: st.GetPlanId(), State: planState(st), Complete: st.GetComplete(), Failed: st.GetFailed(),
		Specs: len(st.GetSpecs()), SpecsPending: st.GetSpecsPending(), SpecsFailed: st.GetSpecsFailed(), PlanningFailed: len(st.GetPlanningFailed()),
		JobsLive: st.GetJobsLive(), JobsDone: st.GetJobsDone(), JobsFailed: st.GetJobsFailed(), Objects: st.GetObjects(), Records: st.GetRecords()}
}

func planListCommand(connect connectFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Every plan the job store knows, with its state and counts",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, closeConn, err := openStore(ctx, connect)
			if err != nil {
				return err
			}
			defer closeConn()
			ids, err := store.PlanIDs(ctx)
			if err != nil {
				return err
			}
			plans := make([]planSummary, 0, len(ids))
			for _, id := range ids {
				st, err := store.PlanStatus(ctx, id)
				if err != nil {
					return err
				}
				plans = append(plans, summarizePlan(st))
			}
			return render(cmd, plans, func(out io.Writer) error {
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "PLAN\tSTATE\tSPECS\tPENDING\tDEAD-LETTERED\tJOBS LIVE\tDONE\tFAILED\tOBJECTS\tRECORDS")
				for _, p := range plans {
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", p.PlanID, p.State, p.Specs, p.SpecsPending,
						p.SpecsFailed+int64(p.PlanningFailed), p.JobsLive, p.JobsDone, p.JobsFailed, p.Objects, p.Records)
				}
				return w.Flush()
			})
		},
	}
}
