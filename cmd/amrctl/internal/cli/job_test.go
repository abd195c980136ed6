package cli_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
)

// TestJobCancel: `amrctl job cancel` deletes a running job at SharePoint (the simulator reports
// JobCancelled and JobEnd) with the submitter's credentials from the environment, and marks the
// job failed "cancelled by operator"; a job already failed, an unknown job and missing
// credentials are refused.
func TestJobCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Azurite and the simulator")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	az, err := testenv.StartAzurite(ctx, testenv.AzuriteOptions{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := az.Close(); err != nil {
			t.Error(err)
		}
	})
	// A slow export: the job is still running when it is cancelled.
	w := testenv.StartWorld(t, az, func(c *server.Config) { c.Rate = 2 })
	url := w.NATS.Server.ClientURL()
	job := w.CreateJob(t, ctx, testenv.JobOptions{Plain: true})
	w.Record(t, ctx, job)

	t.Setenv(spo.TokenEnv, "")
	if _, _, err := amrctlIO(t, url, "job", "cancel", job.ID); cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), "no SharePoint credentials") {
		t.Fatalf("cancel without credentials: %v (exit %d), want a usage error", err, cli.ExitCode(err))
	}
	t.Setenv(spo.TokenEnv, testenv.SimToken)
	out, _, err := amrctlIO(t, url, "job", "cancel", job.ID, "-o", "json")
	if err != nil {
		t.Fatalf("job cancel: %v\n%s", err, out)
	}
	var res struct {
		JobID   string `json:"job_id"`
		Deleted bool   `json:"deleted"`
		State   string `json:"state"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.JobID != job.ID || !res.Deleted || res.State != "failed" || res.Reason != cli.CancelReason {
		t.Fatalf("job cancel -o json: %v\n%s", err, out)
	}
	rec, _, err := w.Store.Job(ctx, job.ID)
	if err != nil || rec.GetState() != amrpipev1.JobState_JOB_STATE_FAILED || rec.GetLastError() != cli.CancelReason || rec.GetEnded() == nil {
		t.Fatalf("job record after cancel: %v (%v)", rec, err)
	}
	if log := w.Log(t, ctx, job); !slices.ContainsFunc(log, func(l string) bool { return strings.Contains(l, "JobCancelled") }) {
		t.Errorf("SharePoint's log of the job has no JobCancelled:\n%s", strings.Join(log, "\n"))
	}
	if !slices.ContainsFunc(w.Requests(), func(r testenv.Request) bool { return r.Method == "DeleteMigrationJob" && r.Status == 200 }) {
		t.Errorf("no DeleteMigrationJob answered 200: %v", w.Requests())
	}
	if _, _, err := amrctlIO(t, url, "job", "cancel", job.ID); cli.ExitCode(err) != cli.ExitFailed || !strings.Contains(err.Error(), "is failed already") {
		t.Errorf("second cancel: %v (exit %d), want refused (exit 1)", err, cli.ExitCode(err))
	}
	if _, _, err := amrctlIO(t, url, "job", "cancel", "00000000-0000-0000-0000-000000000000"); cli.ExitCode(err) != cli.ExitNotFound {
		t.Errorf("cancel of an unknown job: %v (exit %d), want exit 3", err, cli.ExitCode(err))
	}
}
