package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/demo"
	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/progress"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

func devCommand() *cobra.Command {
	var (
		out                string
		rate               float64
		replicas           int
		queue, plain, logs bool
		small, large       int64
		timeout            time.Duration
		secondPass, valid  bool
		jsonl              bool
		changes, perKind   int
		cpuProfile         string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole pipeline on the embedded default: export the sample tenant into an inventory, validate a seeded destination, export the changes incrementally",
		Long: `dev starts an embedded NATS JetStream server, Azurite, the SharePoint simulator (a synthetic
tenant of several sites), a second simulator serving a destination tenant (a copy of the HR site
with seeded differences) and the five services in this process, then:

  1. submits the sample plans (about 218K items, 420K records) and the destination's, showing a
     progress bar per AMR job, and writes every record into an SQLite inventory (--out/inventory.db)
     through the inventory sink, a pass per plan;
  2. validates the destination against the source from the inventory and writes the reports
     (--out/validation/, report.html opens offline), checking that the failures are exactly the
     seeded differences (--validate=false skips);
  3. lets the simulator change the tenant (--changes), runs the plans again incrementally, writes
     the change set (--out/changes.csv), publishes it on amr.changes.<tenant>.<pass> and checks that
     it is exactly the simulator's changes (--second-pass=false skips);
  4. writes each plan's run report (--out/run-report/<plan>/).

It exits non-zero when a job failed or a check against the simulator's ground truth did not hold
(the seeded differences themselves are expected). --jsonl also writes every record to
--out/records.jsonl.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			// With -o json the progress goes to stderr and stdout gets the result alone.
			w, tty := cmd.OutOrStdout(), os.Stdout
			if format == OutputJSON {
				w, tty = cmd.ErrOrStderr(), os.Stderr
			}
			var logOut io.Writer
			if logs {
				logOut = cmd.ErrOrStderr()
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer func() {
					if perr := stop(); perr != nil {
						fmt.Fprintln(cmd.ErrOrStderr(), "amrctl:", perr)
					}
				}()
			}
			begin := time.Now()
			fmt.Fprintln(w, "starting embedded JetStream, Azurite, the SharePoint simulators and the five services…")
			opts := devstack.Options{Profile: tenant.DefaultProfile(), Rate: rate, SimWorkers: 4, Replicas: replicas, Queue: queue,
				Plaintext: plain, Small: small, Large: large, Log: logOut, LogLevel: "info"}
			if valid {
				// The destination copies the HR site under a new URL.
				opts.Destination = &tenant.DestinationSpec{Sites: map[string]string{"/sites/hr": "/sites/hr-new"}, Seed: 1, PerKind: perKind}
			}
			st, err := devstack.Start(ctx, opts)
			if err != nil {
				return err
			}
			defer func() {
				if cerr := st.Close(); cerr != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "amrctl: stopping the stack:", cerr)
				}
			}()
			fmt.Fprintf(w, "ready in %s; simulator at %s (thresholds %d / %d items)\n",
				time.Since(begin).Truncate(time.Millisecond), st.SimURL, small, large)
			stopDashboard, err := startDevDashboard(ctx, cmd, w, st, out)
			if err != nil {
				return err
			}
			defer func() {
				if derr := stopDashboard(); derr != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "amrctl: stopping the dashboard:", derr)
				}
			}()
			var unfinished string // the jobs a stop cut short, by state
			o := demo.Options{Out: out, Plans: testenv.DemoPlans(st.SiteURL), Validate: valid, JSONL: jsonl,
				Watch: func(ctx context.Context, planIDs []string) error {
					display := progress.New(w, term.IsTerminal(int(tty.Fd())))
					err := watch(ctx, st, display, planIDs)
					display.Close()
					unfinished = display.States()
					return err
				}}
			if secondPass {
				o.Changes = changes
			}
			res, err := demo.Run(ctx, st, o, w)
			if err != nil && ctx.Err() != nil {
				return stopped(w, cmd.Context().Err() != nil, timeout, time.Since(begin), unfinished, demo.Kept(out))
			}
			if err != nil {
				return err
			}
			took := time.Since(begin)
			if format == OutputJSON {
				if err := render(cmd, devResult(res, took), nil); err != nil {
					return err
				}
			}
			return summarize(w, res, took)
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "out", "directory for the inventory, the change set and the reports (replaced)")
	f.Float64Var(&rate, "rate", 20000, "simulator export speed per AMR job, objects/s (SharePoint's lab figure is ~400; 0 = unlimited)")
	f.IntVar(&replicas, "replicas", 1, "replicas of every service")
	f.BoolVar(&queue, "queue", false, "SharePoint also reports through an Azure Queue, read beside progress polling")
	f.BoolVar(&plain, "plaintext", false, "turn manifest encryption off")
	f.BoolVar(&logs, "logs", false, "print the services' logs to stderr")
	f.Int64Var(&small, "small", testenv.DemoSmall, "planner: folders under this many items are batched into multi-URL jobs")
	f.Int64Var(&large, "large", testenv.DemoLarge, "planner: folders over this many items are probed and split")
	f.DurationVar(&timeout, "timeout", 15*time.Minute, "give up after this long")
	f.BoolVar(&secondPass, "second-pass", true, "after the full pass, change the tenant (--changes) and run the same plans incrementally; check the change set")
	f.IntVar(&changes, "changes", 500, "changes the simulator makes before the second pass")
	f.BoolVar(&valid, "validate", true, "export a destination tenant with seeded differences and validate it against the source")
	f.IntVar(&perKind, "destination-differences", 2, "differences the destination seeds per kind (8 kinds)")
	addDashboardFlag(f)
	f.BoolVar(&jsonl, "jsonl", false, "also write every record to records.jsonl in --out (protojson, one record a line)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof; the stages' and the inventory sink's samples carry a stage label)")
	return cmd
}

// startCPUProfile profiles the process into path until the returned stop is called.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(fmt.Errorf("cpu profile: %w", err), f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}

// watch feeds the records of the plans' jobs (one pass's) to the display until the pipeline is
// idle. The live watch keeps the bars moving; a snapshot every half second makes sure no final
// state is missed (a KV watcher of a busy bucket can be reset under load and skip intermediate
// values).
func watch(ctx context.Context, st *devstack.Stack, d *progress.Display, planIDs []string) error {
	ours := make(map[string]bool, len(planIDs))
	for _, id := range planIDs {
		ours[id] = true
	}
	show := func(rec *amrpipev1.JobRecord) {
		if rec != nil && ours[rec.GetSpec().GetPlanId()] {
			d.Update(rec)
		}
	}
	changes, err := st.Store.Watch(ctx, "")
	if err != nil {
		return err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				changes = nil // the snapshots carry on
				continue
			}
			show(c.Record)
		case <-tick.C:
			jobs, err := st.Jobs(ctx)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				show(j)
			}
			if !d.AllDone() {
				continue
			}
			idle, _, err := st.Idle(ctx)
			if err != nil {
				return err
			}
			if idle {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stopped says why a run ended early (Ctrl-C, or --timeout), which jobs had not finished and
// what the output directory keeps, and returns the error amrctl exits with: interrupted
// (context.Canceled, exit 130) or failed.
func stopped(w io.Writer, interrupted bool, timeout, took time.Duration, unfinished string, kept []string) error {
	why := fmt.Sprintf("timed out after --timeout %s", timeout)
	if interrupted {
		why = fmt.Sprintf("interrupted after %s", took.Truncate(time.Second))
	}
	fmt.Fprintf(w, "\n%s", why)
	if unfinished != "" {
		fmt.Fprintf(w, "; jobs not finished: %s", unfinished)
	}
	fmt.Fprintln(w)
	if len(kept) == 0 {
		fmt.Fprintln(w, "nothing was written yet")
	} else {
		fmt.Fprintln(w, "kept:")
		for _, k := range kept {
			fmt.Fprintln(w, "  "+k)
		}
	}
	if interrupted {
		return interruptedf("demo %s", why)
	}
	return fmt.Errorf("demo %s", why)
}

// devResult is the demo's result as `amrctl dev -o json` prints it: counts, checks and paths (the
// validation's items are in its reports).
func devResult(res *demo.Result, took time.Duration) map[string]any {
	return map[string]any{
		"ok": res.OK(), "took_seconds": took.Seconds(), "jobs": res.Jobs, "jobs_failed": res.JobsFailed,
		"records": res.Records, "passes": res.Passes, "change_set": res.ChangeSet, "simulator_changes": res.SimulatorChanges,
		"changes_mismatch": res.ChangesMismatch, "seeded_differences": res.Seeded, "findings_mismatch": res.FindingsMismatch,
		"inventory": res.Inventory, "changes_csv": res.ChangesCSV, "records_jsonl": res.RecordsJSONL,
		"validation_reports": res.ValidationReports, "run_reports": res.RunReports,
	}
}

// summarize prints where the demo's outputs are, how to open the HTML report, and the totals.
func summarize(w io.Writer, res *demo.Result, took time.Duration) error {
	var states []string
	jobs := 0
	for k, v := range res.Jobs {
		states = append(states, fmt.Sprintf("%d %s", v, k))
		jobs += v
	}
	sort.Strings(states)
	fmt.Fprintf(w, "\ninventory:    %s (SQLite; amrctl diff --inventory sqlite:%s)\n", res.Inventory, res.Inventory)
	if res.ChangesCSV != "" {
		fmt.Fprintf(w, "change set:   %s\n", res.ChangesCSV)
	}
	if res.RecordsJSONL != "" {
		fmt.Fprintf(w, "records:      %s\n", res.RecordsJSONL)
	}
	if len(res.RunReports) > 0 {
		fmt.Fprintf(w, "run reports:  %s/<plan>/ (%d files: CSVs and report.html per plan)\n", filepath.Dir(filepath.Dir(res.RunReports[0])), len(res.RunReports))
	}
	if n := len(res.ValidationReports); n > 0 {
		fmt.Fprintf(w, "validation:   %s/ (%d files)\n", filepath.Dir(res.ValidationReports[0]), n)
		fmt.Fprintf(w, "open %s in a browser: one self-contained page, no network needed\n", res.ValidationReports[n-1])
	}
	fmt.Fprintf(w, "%d AMR jobs (%s); %d records ingested into the inventory over %d passes\n", jobs, strings.Join(states, ", "), res.Records, res.Passes)
	fmt.Fprintf(w, "took %s (%.0f records/s end to end: every pass's records over the wall time, start-up included)\n",
		took.Truncate(time.Millisecond), float64(res.Records)/took.Seconds())
	if !res.OK() {
		return fmt.Errorf("demo: %d jobs failed, change set mismatch %q, findings mismatch %q", res.JobsFailed, res.ChangesMismatch, res.FindingsMismatch)
	}
	return nil
}
