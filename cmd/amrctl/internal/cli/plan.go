package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func planCommand(connect connectFunc) *cobra.Command {
	plan := &cobra.Command{Use: "plan", Short: "Submit job plans and follow them"}
	plan.AddCommand(planSubmitCommand(connect), planStatusCommand(connect), planListCommand(connect))
	return plan
}

func planSubmitCommand(connect connectFunc) *cobra.Command {
	var (
		site, id, csvFile                        string
		targets                                  []string
		versions, permissions, security, incr, x bool
		wait                                     bool
		interval                                 time.Duration
	)
	submit := &cobra.Command{
		Use:   "submit (--site URL --target URL [--target URL ...] | --from-csv FILE)",
		Short: "Validate plans and publish them on amr.plans.submit; --wait follows them to the end",
		Long: "Validate the plans, then publish them on amr.plans.submit and print their ids (which `plan status`, " +
			"`jobs --plan` and `report --plan` take). Nothing is published when any target is wrong. " +
			"--target is repeatable and never split: a URL may hold commas. --from-csv reads SPMT's bulk CSV layout " +
			"(docs/amrctl.md) and makes one plan per site. --wait follows the plans until they end: progress on " +
			"stderr, the final status on stdout, exit status 1 when a plan ended incomplete.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			plans, err := submittedPlans(site, targets, csvFile)
			if err != nil {
				return err
			}
			if id != "" {
				if err := topology.CheckToken(id); err != nil {
					return usageErrorf("--id %q: %v (the id becomes a subject token and a key)", id, err)
				}
				if len(plans) > 1 {
					return usageErrorf("--id names one plan; %s makes %d (one per site): leave --id out", csvFile, len(plans))
				}
			}
			opts := &amrpipev1.ReadOptions{IncludeVersions: versions, IncludePermission: permissions, IncludeSecurity: security, IncludeExtendedMetadata: x}
			now := time.Now()
			var reqs []*amrpipev1.PlanRequest
			for _, p := range plans {
				req := &amrpipev1.PlanRequest{PlanId: id, SiteUrl: p.Site, Incremental: incr, Submitted: timestamppb.New(now), Options: opts}
				for _, t := range p.Targets {
					req.Targets = append(req.Targets, t.URL)
				}
				if req.PlanId == "" {
					req.PlanId = PlanID(req, now)
				}
				reqs = append(reqs, req)
			}
			nc, js, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer nc.Close()
			for _, req := range reqs {
				if _, err := bus.Publish(cmd.Context(), js, topology.SubjectPlanSubmit, req, "plan/"+req.GetPlanId()); err != nil {
					return fmt.Errorf("submit plan %s: %w", req.GetPlanId(), err)
				}
			}
			if wait {
				ids := make([]string, len(reqs))
				for i, r := range reqs {
					ids[i] = r.GetPlanId()
					fmt.Fprintf(cmd.ErrOrStderr(), "submitted plan %s (%s, %d targets)\n", r.GetPlanId(), r.GetSiteUrl(), len(r.GetTargets()))
				}
				return waitPlans(cmd, js, ids, interval)
			}
			return render(cmd, reqs, func(w io.Writer) error {
				for _, r := range reqs {
					if _, err := fmt.Fprintln(w, r.GetPlanId()); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	f := submit.Flags()
	f.StringVar(&site, "site", "", "absolute site URL (the plan's site collection or web)")
	// StringArray, not StringSlice: a StringSlice splits on commas, and SharePoint names hold them.
	f.StringArrayVar(&targets, "target", nil, "absolute URL of a library, list or folder under --site to export (repeatable; never split on commas)")
	f.StringVar(&csvFile, "from-csv", "", "CSV file in SPMT's bulk layout: one plan per Target Web (docs/amrctl.md)")
	f.StringVar(&id, "id", "", "plan id (default: derived from the plan and the time); letters, digits, '-' and '_' are safest")
	f.BoolVar(&versions, "versions", false, "include versions")
	f.BoolVar(&permissions, "permissions", false, "include role assignments")
	f.BoolVar(&security, "security", false, "read users and groups once at the top")
	f.BoolVar(&x, "extended", false, "include extended metadata")
	f.BoolVar(&incr, "incremental", false, "use stored change tokens when fresh")
	f.BoolVar(&wait, "wait", false, "follow the plans until they end; exit status 1 when one ended incomplete")
	f.DurationVar(&interval, "interval", 2*time.Second, "with --wait: how often to look at the plans")
	return submit
}

// submittedPlans are the plans the flags describe, validated: --site with --target, or
// --from-csv.
func submittedPlans(site string, targets []string, csvFile string) ([]sitePlan, error) {
	var plans []sitePlan
	switch {
	case csvFile != "" && (site != "" || len(targets) > 0):
		return nil, usageErrorf("--from-csv names sites and targets itself: give it without --site and --target")
	case csvFile != "":
		f, err := os.Open(csvFile)
		if err != nil {
			return nil, usageErrorf("--from-csv: %v", err)
		}
		plans, err = readPlanCSV(f, filepath.Base(csvFile))
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("--from-csv: %w", cerr)
		}
		if err != nil {
			return nil, err
		}
	case site == "":
		return nil, usageErrorf("--site is required (or --from-csv)")
	default:
		p := sitePlan{Site: site}
		for i, t := range targets {
			p.Targets = append(p.Targets, planTarget{URL: t, From: fmt.Sprintf("--target %d", i+1)})
		}
		plans = []sitePlan{p}
	}
	for _, p := range plans {
		if err := checkSitePlan(p); err != nil {
			return nil, err
		}
	}
	return plans, nil
}

// PlanID derives a plan id from its content and the submission time, so two submissions of the
// same plan are two passes while a resend of one submission is recognised. It is a valid subject
// token and plain bucket key: the id the planner records (amr_plans "plan.<id>") and every command
// takes.
func PlanID(req *amrpipev1.PlanRequest, at time.Time) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%v|%s", req.GetSiteUrl(), strings.Join(req.GetTargets(), "\n"), req.GetIncremental(), at.UTC().Format(time.RFC3339Nano))
	return "plan-" + hex.EncodeToString(h.Sum(nil))[:16]
}
