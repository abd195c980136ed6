package testenv

// This file holds the sample plans `amrctl dev`, the end-to-end tests and the chaos suite submit,
// with the planner thresholds under which each of them runs every planner tier.

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Planner thresholds (-small, -large) under which the sample plans run every planner tier.
const (
	// DemoSmall and DemoLarge are for DemoPlans over tenant.DefaultProfile.
	DemoSmall, DemoLarge = 2000, 50000
	// SmallProfileSmall and SmallProfileLarge are for SmallPlan over tenant.SmallProfile: the
	// Documents library (about 1,750 items) is over Large and gets a probe, its "Big" folder
	// (1,200 files) another probe, the twelve Team folders (42 items each) and "Empty" go into
	// multi-URL jobs, the Tasks list (300) and the team web's Notes library (101) get one job
	// each, and security is read once at the top.
	SmallProfileSmall, SmallProfileLarge = 50, 500
)

// FullOptions reads versions, permissions and security: everything the sample plans export.
func FullOptions() *amrpipev1.ReadOptions {
	return &amrpipev1.ReadOptions{IncludeVersions: true, IncludePermission: true, IncludeSecurity: true}
}

// DemoPlans is the sample of `amrctl dev`: three site collections of the default simulated tenant,
// about 218K items in five libraries and three lists, chosen so that with DemoSmall and DemoLarge
// every planner tier runs: the engineering library (122K items) is over Large and gets a probe
// whose subfolders split into one-job folders (Specs 25K, Releases 36K) and a multi-URL job of
// 1,000 sprint folders; the HR library mixes tiny folders (multi-URL) with a 10K one; lists and the
// platform web's library get a job each; security is read once per site collection. siteURL makes
// a server-relative path absolute on the simulator.
func DemoPlans(siteURL func(string) string) []*amrpipev1.PlanRequest {
	mk := func(id, site string, targets ...string) *amrpipev1.PlanRequest {
		p := &amrpipev1.PlanRequest{PlanId: id, SiteUrl: siteURL(site), Options: FullOptions(), Submitted: timestamppb.Now()}
		for _, t := range targets {
			p.Targets = append(p.Targets, siteURL(site+t))
		}
		return p
	}
	return []*amrpipev1.PlanRequest{
		mk("demo-hr", "/sites/hr", "/Shared Documents", "/Lists/Onboarding Tasks"),
		mk("demo-engineering", "/sites/engineering", "/Shared Documents", "/Lists/Issues", "/platform/Design Docs", "/platform/Lists/Builds"),
		mk("demo-archive", "/sites/archive", "/Records/2020", "/Lists/Retention Schedule"),
	}
}

// SmallTargets are the small profile's two libraries and its list, across two webs.
func SmallTargets(siteURL func(string) string) []string {
	return []string{
		siteURL(Site + "/Shared Documents"),
		siteURL(Site + "/Lists/Tasks"),
		siteURL(Site + "/team/Notes"),
	}
}

// SmallPlan is a plan over SmallTargets with FullOptions.
func SmallPlan(siteURL func(string) string, id string, incremental bool) *amrpipev1.PlanRequest {
	return &amrpipev1.PlanRequest{PlanId: id, SiteUrl: siteURL(Site), Targets: SmallTargets(siteURL), Options: FullOptions(),
		Incremental: incremental, Submitted: timestamppb.Now()}
}
