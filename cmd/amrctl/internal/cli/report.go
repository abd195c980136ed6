package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/runreport"
)

func reportCommand(connect connectFunc) *cobra.Command {
	var planID, out string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write a plan's run report: SummaryReport.csv, JobReport.csv, ObjectTypeReport.csv, FailureSummary.csv and report.html",
		Long: "Write the run report of a plan into a directory: the summary (jobs, objects per type, bytes, versions, " +
			"duration, throttling), one row per job, and the failures (SharePoint's JobError/JobWarning/JobFatalError " +
			"per object, failed jobs, dead-lettered specs) as CSV files, and the same report as report.html " +
			"(self-contained: open it in any browser, offline; its tables show the first 1,000 rows, the CSV files all). " +
			"A plan still running gets a report marked running.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if planID == "" {
				return errors.New("--plan is required")
			}
			ctx := cmd.Context()
			c, closeConn, err := connectClient(ctx, connect)
			if err != nil {
				return err
			}
			defer closeConn()
			r, err := runreport.Build(ctx, c, planID)
			if errors.Is(err, client.ErrNotFound) {
				return fmt.Errorf("--plan: %w", err)
			}
			if err != nil {
				return err
			}
			paths, err := r.WriteCSV(out)
			if err != nil {
				return err
			}
			html, err := r.WriteHTML(out)
			if err != nil {
				return err
			}
			files := append(paths, html)
			return render(cmd, map[string]any{"plan_id": r.PlanID, "status": r.Summary.Status(), "summary": r.Summary, "files": files},
				func(w io.Writer) error {
					writeReportSummary(w, r)
					for _, p := range files {
						fmt.Fprintln(w, "wrote", p)
					}
					_, err := fmt.Fprintf(w, "open %s in a browser (it needs no network)\n", html)
					return err
				})
		},
	}
	cmd.Flags().StringVar(&planID, "plan", "", "the plan id")
	cmd.Flags().StringVar(&out, "out", ".", "directory to write the CSV files and report.html into (created if missing)")
	return cmd
}

// writeReportSummary prints the report's totals in a few lines.
func writeReportSummary(w io.Writer, r *runreport.Report) {
	s := r.Summary
	fmt.Fprintf(w, "plan %s: %s; %d jobs %v, %d specs pending, %d dead-lettered\n", r.PlanID, s.Status(), s.Jobs, s.JobsByState,
		s.SpecsPending, s.SpecsDeadLettered)
	fmt.Fprintf(w, "%d records (%d objects by SharePoint's count), %d bytes, %d earlier versions in %s (%.0f records/s)\n",
		s.Records, s.Objects, s.Bytes, s.Versions, s.Duration.Round(1e6), s.RecordsPerSecond)
	fmt.Fprintf(w, "SharePoint: %d errors, %d warnings, %d fatal errors; SQL throttling wait %s, %d postponements\n",
		s.Errors, s.Warnings, s.FatalErrors, s.SQLThrottlingWait, s.Postponed)
	if len(r.EventsMissing) > 0 {
		fmt.Fprintf(w, "events of %d jobs are no longer stored (older than 5 days): their issues are not in the report\n", len(r.EventsMissing))
	}
}
