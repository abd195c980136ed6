package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/progress"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func jobsCommand(connect connectFunc) *cobra.Command {
	var plan, state string
	jobs := &cobra.Command{
		Use:   "jobs",
		Short: "List AMR jobs and their state (--plan, --state filter them)",
		Long: "List the AMR jobs of the job store, sorted by job id. --plan keeps a plan's jobs (its re-plans' too: " +
			"<plan>-replan-<spec>); --state keeps jobs in one state: " + strings.Join(jobStateNames(), ", ") + ".",
		RunE: func(cmd *cobra.Command, _ []string) error {
			want, err := parseJobState(state)
			if err != nil {
				return err
			}
			store, closeConn, err := openStore(cmd.Context(), connect)
			if err != nil {
				return err
			}
			defer closeConn()
			records, err := store.Jobs(cmd.Context())
			if err != nil {
				return err
			}
			records = filterJobs(records, plan, want)
			return render(cmd, records, func(out io.Writer) error {
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "JOB\tPLAN\tKIND TARGET\tSTATE\tOBJECTS\tEXPECTED\tRECORDS\tERROR")
				for _, r := range records {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.GetJobId(), r.GetSpec().GetPlanId(), progress.Label(r), jobstore.StateName(r.GetState()),
						r.GetObjectsProcessed(), r.GetExpectedObjects(), r.GetRecords(), r.GetLastError())
				}
				return w.Flush()
			})
		},
	}
	jobs.Flags().StringVar(&plan, "plan", "", "only the jobs of this plan (and of its re-plans)")
	jobs.Flags().StringVar(&state, "state", "", "only jobs in this state: "+strings.Join(jobStateNames(), "|"))
	jobs.AddCommand(&cobra.Command{
		Use:   "watch",
		Short: "Live progress of every job until interrupted (-o json: each job record as it changes, a JSON line each)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			store, closeConn, err := openStore(cmd.Context(), connect)
			if err != nil {
				return err
			}
			defer closeConn()
			changes, err := store.Watch(cmd.Context(), "")
			if err != nil {
				return err
			}
			if format == OutputJSON {
				for c := range changes {
					if c.Record == nil {
						continue
					}
					line, err := protoJSON.Marshal(c.Record)
					if err != nil {
						return err
					}
					if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", line); err != nil {
						return err
					}
				}
				return nil
			}
			d := progress.New(cmd.OutOrStdout(), term.IsTerminal(int(os.Stdout.Fd())))
			defer d.Close()
			for c := range changes {
				if c.Record != nil {
					d.Update(c.Record)
				}
			}
			return nil
		},
	})
	return jobs
}

// jobStates are the states --state names as the job tables show them (jobstore.StateName):
// "ended" is a job whose end SharePoint reported and whose package the parser still reads.
var jobStates = []amrpipev1.JobState{
	amrpipev1.JobState_JOB_STATE_SUBMITTED, amrpipev1.JobState_JOB_STATE_QUEUED, amrpipev1.JobState_JOB_STATE_RUNNING,
	amrpipev1.JobState_JOB_STATE_ENDED, amrpipev1.JobState_JOB_STATE_DONE, amrpipev1.JobState_JOB_STATE_FAILED,
}

func jobStateNames() []string {
	out := make([]string, len(jobStates))
	for i, s := range jobStates {
		out[i] = jobstore.StateName(s)
	}
	return out
}

// parseJobState maps a --state name to its state (UNSPECIFIED for "": every state).
func parseJobState(name string) (amrpipev1.JobState, error) {
	if name == "" {
		return amrpipev1.JobState_JOB_STATE_UNSPECIFIED, nil
	}
	for _, s := range jobStates {
		if strings.EqualFold(name, jobstore.StateName(s)) {
			return s, nil
		}
	}
	return 0, usageErrorf("--state %q: want one of %s", name, strings.Join(jobStateNames(), ", "))
}

// filterJobs keeps the jobs of plan (and its re-plans; "" any plan) in state (UNSPECIFIED: any),
// sorted by job id.
func filterJobs(records []*amrpipev1.JobRecord, plan string, state amrpipev1.JobState) []*amrpipev1.JobRecord {
	out := make([]*amrpipev1.JobRecord, 0, len(records))
	for _, r := range records {
		p := r.GetSpec().GetPlanId()
		if plan != "" && p != plan && !strings.HasPrefix(p, plan+replanInfix) {
			continue
		}
		if state != amrpipev1.JobState_JOB_STATE_UNSPECIFIED && r.GetState() != state {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *amrpipev1.JobRecord) int { return strings.Compare(a.GetJobId(), b.GetJobId()) })
	return out
}

// replanInfix joins a plan id and a spec id in the id of a re-plan (pkg/stage/submitter).
const replanInfix = "-replan-"
