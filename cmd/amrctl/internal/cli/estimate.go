package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/estimate"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/planner"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// DefaultEstimateConcurrency is --concurrency's default: SharePoint publishes no number of AMR
// jobs it runs at once for a tenant (jobs queue: JobQueued, JobPostponed), so the published
// per-job rates are only known to hold for one job at a time.
const DefaultEstimateConcurrency = 1

func estimateCommand(connect connectFunc) *cobra.Command {
	var (
		site, planID                             string
		targets                                  []string
		versions, permissions, security, incr, x bool
		concurrency                              int
		small, large                             int64
		sp                                       spo.Config
	)
	cmd := &cobra.Command{
		Use:   "estimate (--site URL --target URL [--target URL ...] | --plan ID)",
		Short: "Dry-run the planner over a plan's real folder sizes: its jobs, objects and an ETA range",
		Long: `With --site and --target (the flags of 'plan submit'), plans as the planner would, over the real
folder sizes, and prints the jobs it would create, their objects and an ETA range at SharePoint's
published AMR rates (docs/amrctl.md, "estimate"); nothing is published. With --plan, measures a
running plan from its job records: objects processed so far over time, and the time left at that
rate. SharePoint calls share the tenant's throttling budget with the services (KV amr_throttle).`,
	}
	f := cmd.Flags()
	f.StringVar(&site, "site", "", "absolute site-collection URL")
	f.StringArrayVar(&targets, "target", nil, "absolute URL of a library, list or folder to export (repeatable; commas are part of the URL)")
	f.BoolVar(&versions, "versions", false, "include versions")
	f.BoolVar(&permissions, "permissions", false, "include role assignments")
	f.BoolVar(&security, "security", false, "read users and groups once at the top")
	f.BoolVar(&x, "extended", false, "include extended metadata")
	f.BoolVar(&incr, "incremental", false, "use stored change tokens when fresh")
	f.IntVar(&concurrency, "concurrency", DefaultEstimateConcurrency, "AMR jobs SharePoint runs at once for this export (default 1: the only figure Microsoft's rates are published for)")
	f.StringVar(&planID, "plan", "", "a plan already running: measure its rate from its job records instead")
	gf := addGoFlags(cmd, sp.RegisterFlags, func(fs *flag.FlagSet) {
		fs.Int64Var(&small, "small", sizing.DefaultSmall, "the planner's -small: folders with fewer items are batched into multi-URL jobs")
		fs.Int64Var(&large, "large", sizing.DefaultLarge, "the planner's -large: folders with more items get a shallow probe job")
	})
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if concurrency < 1 {
			return usageErrorf("--concurrency %d: want 1 or more", concurrency)
		}
		if planID != "" {
			if site != "" || len(targets) > 0 {
				return usageErrorf("--plan measures a running plan: give it alone, without --site or --target")
			}
			return estimateRunning(cmd, connect, planID)
		}
		if site == "" || len(targets) == 0 {
			return usageErrorf("estimate needs --site and at least one --target, or --plan")
		}
		if err := gf.applyEnv(cmd); err != nil {
			return err
		}
		lookup, fileErrs := secrets()
		sp.LoadSecrets(lookup)
		if err := fileErrs(); err != nil {
			return err
		}
		req := &amrpipev1.PlanRequest{
			SiteUrl: site, Targets: targets, Incremental: incr, Submitted: timestamppb.Now(),
			Options: &amrpipev1.ReadOptions{IncludeVersions: versions, IncludePermission: permissions, IncludeSecurity: security, IncludeExtendedMetadata: x},
		}
		req.PlanId = PlanID(req, time.Now())
		est, err := dryRun(cmd, lookup, sp, sizing.Config{Small: small, Large: large}, req, concurrency)
		if err != nil {
			return err
		}
		return render(cmd, est, func(w io.Writer) error { return printEstimate(w, est) })
	}
	return cmd
}

// dryRun opens a planner stage on its own runtime (to share the throttling budget and read
// stored change tokens) and plans req without publishing.
func dryRun(cmd *cobra.Command, lookup func(string) (string, bool), sp spo.Config, cfg sizing.Config, req *amrpipev1.PlanRequest, concurrency int) (estimate.Estimate, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
	defer cancel()
	sc := svc.Config{Name: "amrctl-estimate", NATSURL: flagValue(cmd, "nats-url"), NATSUser: flagValue(cmd, "nats-user"),
		HTTPAddr: "127.0.0.1:0", OTel: "none", LogLevel: "error"}
	sc.LoadSecrets(lookup)
	rt, err := svc.New(ctx, sc, svc.Options{LogOutput: io.Discard, Signals: []os.Signal{}})
	if err != nil {
		return estimate.Estimate{}, err
	}
	defer func() { _ = rt.Close() }() // nothing was published: a failed drain loses nothing
	deps, err := stage.Open(ctx, planner.Def(), stage.Config{SharePoint: sp, MaxThrottleWait: stage.DefaultMaxThrottleWait}, rt, nil)
	if err != nil {
		return estimate.Estimate{}, err
	}
	st, err := planner.New(planner.Config{Planner: cfg}, deps)
	if err != nil {
		return estimate.Estimate{}, usageErrorf("%v", err)
	}
	jobs, sz, err := st.DryRun(ctx, req)
	if errors.Is(err, planner.ErrInvalidPlan) {
		return estimate.Estimate{}, usageErrorf("%v", err)
	}
	if err != nil {
		return estimate.Estimate{}, fmt.Errorf("estimate: %w", err)
	}
	// A probe's objects are its folder's total, which the Sizer already read (cached).
	size := func(j sizing.JobSpec) int64 {
		if len(j.URLs) != 1 {
			return -1
		}
		n, err := sz.Resolve(ctx, j.URLs[0])
		if err != nil || n.Items < 0 {
			return -1
		}
		return n.Items
	}
	return estimate.Plan(req.GetPlanId(), jobs, concurrency, size), nil
}

func flagValue(cmd *cobra.Command, name string) string {
	if f := cmd.Flag(name); f != nil {
		return f.Value.String()
	}
	return ""
}

func estimateRunning(cmd *cobra.Command, connect connectFunc, planID string) error {
	store, closeConn, err := openStore(cmd.Context(), connect)
	if err != nil {
		return err
	}
	defer closeConn()
	jobs, err := store.Jobs(cmd.Context())
	if err != nil {
		return err
	}
	p := estimate.Running(planID, jobs, time.Now())
	if p.Jobs == 0 {
		return fmt.Errorf("plan %s: no job records: %w", planID, ErrNotFound)
	}
	return render(cmd, p, func(w io.Writer) error {
		eta := "unknown (nothing processed yet)"
		if p.Rate > 0 {
			eta = p.ETA.Text
		}
		_, err := fmt.Fprintf(w, "plan %s: %d jobs (%d done), %d of %d objects, %.0f objects/s measured, %d left, ETA %s\n",
			p.PlanID, p.Jobs, p.Done, p.Processed, p.Objects, p.Rate, p.Remaining, eta)
		return err
	})
}

func printEstimate(w io.Writer, e estimate.Estimate) error {
	kinds := make([]string, 0, len(e.ByKind))
	for k, n := range e.ByKind {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "%d jobs (%s), %d objects\n", e.JobCount, strings.Join(kinds, ", "), e.Objects)
	fmt.Fprintf(w, "ETA %s to %s with %d job(s) at once, at %.0f to %.0f objects/s per job (SharePoint's published AMR rates, no throttling)\n",
		e.ETAFast.Text, e.ETASlow.Text, e.Concurrency, estimate.FastRate, estimate.SlowRate)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tOBJECTS\tURLS")
	for _, j := range e.Jobs {
		objects := "?"
		if j.Objects >= 0 {
			objects = fmt.Sprint(j.Objects)
		}
		urls := strings.Join(j.URLs, " ")
		if len(j.URLs) > 3 {
			urls = strings.Join(j.URLs[:3], " ") + fmt.Sprintf(" … (%d URLs)", len(j.URLs))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", j.Kind, objects, urls)
	}
	return tw.Flush()
}
