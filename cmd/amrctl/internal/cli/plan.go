package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func planCommand(connect connectFunc) *cobra.Command {
	plan := &cobra.Command{Use: "plan", Short: "Job plans"}
	var (
		site, id                                 string
		targets                                  []string
		versions, permissions, security, incr, x bool
	)
	submit := &cobra.Command{
		Use:   "submit --site URL --target URL [--target URL ...]",
		Short: "Publish a job plan on amr.plans.submit",
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &amrpipev1.PlanRequest{
				PlanId: id, SiteUrl: site, Targets: targets, Incremental: incr, Submitted: timestamppb.Now(),
				Options: &amrpipev1.ReadOptions{IncludeVersions: versions, IncludePermission: permissions, IncludeSecurity: security, IncludeExtendedMetadata: x},
			}
			if req.PlanId == "" {
				req.PlanId = PlanID(req, time.Now())
			}
			nc, js, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer nc.Close()
			if _, err := bus.Publish(cmd.Context(), js, topology.SubjectPlanSubmit, req, "plan/"+req.PlanId); err != nil {
				return fmt.Errorf("submit plan: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), req.PlanId)
			return nil
		},
	}
	f := submit.Flags()
	f.StringVar(&site, "site", "", "absolute site-collection URL")
	f.StringSliceVar(&targets, "target", nil, "absolute URL of a library, list or folder to export (repeatable)")
	f.StringVar(&id, "id", "", "plan id (default: derived from the plan and the time)")
	f.BoolVar(&versions, "versions", false, "include versions")
	f.BoolVar(&permissions, "permissions", false, "include role assignments")
	f.BoolVar(&security, "security", false, "read users and groups once at the top")
	f.BoolVar(&x, "extended", false, "include extended metadata")
	f.BoolVar(&incr, "incremental", false, "use stored change tokens when fresh")
	_ = submit.MarkFlagRequired("site")
	_ = submit.MarkFlagRequired("target")
	plan.AddCommand(submit, planStatusCommand(connect))
	return plan
}

// PlanID derives a plan id from its content and the submission time, so two submissions of the
// same plan are two passes while a resend of one submission is recognised.
func PlanID(req *amrpipev1.PlanRequest, at time.Time) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%v|%s", req.GetSiteUrl(), strings.Join(req.GetTargets(), ","), req.GetIncremental(), at.UTC().Format(time.RFC3339Nano))
	return "plan-" + hex.EncodeToString(h.Sum(nil))[:16]
}
