package cli

import (
	"fmt"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/progress"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
)

func jobsCommand(connect connectFunc) *cobra.Command {
	jobs := &cobra.Command{
		Use:   "jobs",
		Short: "List AMR jobs and their state",
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer nc.Close()
			store, err := jobstore.Open(cmd.Context(), js, time.Now)
			if err != nil {
				return err
			}
			records, err := store.Jobs(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "JOB\tKIND TARGET\tSTATE\tOBJECTS\tEXPECTED\tRECORDS\tERROR")
			var rows []string
			for _, r := range records {
				rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%d\t%d\t%d\t%s", r.GetJobId(), progress.Label(r), progress.StateName(r.GetState()),
					r.GetObjectsProcessed(), r.GetExpectedObjects(), r.GetRecords(), r.GetLastError()))
			}
			sort.Strings(rows)
			for _, r := range rows {
				fmt.Fprintln(w, r)
			}
			return w.Flush()
		},
	}
	jobs.AddCommand(&cobra.Command{
		Use:   "watch",
		Short: "Live progress of every job until interrupted",
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer nc.Close()
			store, err := jobstore.Open(cmd.Context(), js, time.Now)
			if err != nil {
				return err
			}
			changes, err := store.Watch(cmd.Context(), "")
			if err != nil {
				return err
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
