package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// CancelReason is the last error of a job cancelled with `amrctl job cancel`.
const CancelReason = "cancelled by operator"

func jobCommand(connect connectFunc) *cobra.Command {
	job := &cobra.Command{Use: "job", Short: "Act on one AMR job"}
	job.AddCommand(jobCancelCommand(connect))
	return job
}

// cancelResult is `amrctl job cancel -o json`.
type cancelResult struct {
	JobID string `json:"job_id"`
	Site  string `json:"site_url"`
	// Deleted is SharePoint's answer to DeleteMigrationJob.
	Deleted bool   `json:"deleted"`
	State   string `json:"state"`
	Reason  string `json:"reason"`
}

func jobCancelCommand(connect connectFunc) *cobra.Command {
	var sp spo.Config
	gofs := flag.NewFlagSet("sharepoint", flag.ContinueOnError)
	sp.RegisterFlags(gofs)
	flagenv.Usage(gofs, stage.EnvPrefix)
	cmd := &cobra.Command{
		Use:   "cancel JOB_ID",
		Short: "Delete an AMR job at SharePoint (DeleteMigrationJob) and mark it failed: " + CancelReason,
		Long: "Call DeleteMigrationJob for the job on the site its record names, with the submitter's SharePoint " +
			"credentials (the same flags and environment: --sp-tenant-id, --sp-client-id, --sp-cert-file and " +
			spo.CertPasswordEnv + ", or " + spo.TokenEnv + "; each secret may be in the file its " + flagenv.FileSuffix +
			" variable names), then mark the job failed (\"" + CancelReason + "\") so the relay stops following it. " +
			"Whether DeleteMigrationJob stops an AMR read job is not documented by Microsoft (docs/amr-protocol.md).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			jobID := args[0]
			if err := applyEnv(cmd, gofs, stage.EnvPrefix); err != nil {
				return err
			}
			var fileErr error
			sp.LoadSecrets(flagenv.WithFiles(os.LookupEnv, os.ReadFile, func(_ string, err error) { fileErr = err }))
			if fileErr != nil {
				return fileErr
			}
			client, err := sp.NewClient(nil)
			if errors.Is(err, spo.ErrNoCredentials) {
				return usageErrorf("%v", err)
			}
			if err != nil {
				return err
			}
			nc, js, err := connect(ctx)
			if err != nil {
				return err
			}
			defer nc.Close()
			store, err := jobstore.Open(ctx, js, time.Now)
			if err != nil {
				return err
			}
			rec, _, err := store.Job(ctx, jobID)
			if errors.Is(err, jobstore.ErrNotFound) {
				return fmt.Errorf("job %s: %w", jobID, ErrNotFound)
			}
			if err != nil {
				return err
			}
			if jobstore.Final(rec) {
				return fmt.Errorf("job %s is %s already: nothing to cancel", jobID, jobstore.StateName(rec.GetState()))
			}
			site := rec.GetSpec().GetSiteUrl()
			deleted, err := client.DeleteMigrationJob(ctx, site, jobID)
			if err != nil {
				return sas.RedactError(fmt.Errorf("cancel job %s: DeleteMigrationJob on %s: %w", jobID, site, err))
			}
			rec, err = store.Fire(ctx, jobID, jobstore.Failed(CancelReason, true))
			if err != nil && !errors.Is(err, jobstore.ErrNoChange) {
				return fmt.Errorf("cancel job %s: SharePoint deleted it, but marking it failed: %w", jobID, err)
			}
			// Wake the parser: a failed job whose files are settled can be closed now.
			deps := stage.Deps{Name: "amrctl", Runtime: &svc.Runtime{JS: js}, Now: time.Now}
			if err := deps.JobChanged(ctx, jobID, "cancelled", CancelReason); err != nil {
				return err
			}
			res := cancelResult{JobID: jobID, Site: site, Deleted: deleted, State: jobstore.StateName(rec.GetState()), Reason: rec.GetLastError()}
			return render(cmd, res, func(w io.Writer) error {
				answer := "deleted it"
				if !deleted {
					answer = "answered false (not deleted)"
				}
				_, err := fmt.Fprintf(w, "job %s: SharePoint %s; the job is %s: %s\n", jobID, answer, res.State, res.Reason)
				return err
			})
		},
	}
	cmd.Flags().AddGoFlagSet(gofs)
	return cmd
}

// applyEnv sets each flag of fs not given on the command line from its environment variable
// (flagenv.EnvName under prefix), as the stages read theirs.
func applyEnv(cmd *cobra.Command, fs *flag.FlagSet, prefix string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || cmd.Flags().Changed(f.Name) {
			return
		}
		key := flagenv.EnvName(prefix, f.Name)
		if v, ok := os.LookupEnv(key); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usageErrorf("environment %s: %v", key, serr)
			}
		}
	})
	return err
}
