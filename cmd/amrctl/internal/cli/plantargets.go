package cli

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// MaxTargets bounds the targets of one plan. A PlanRequest travels in one NATS message (1 MiB by
// default) and the planner sizes every target before it plans: a thousand URLs of up to 400 bytes
// fit the message with room to spare, and more belong in several plans (or a CSV file, which
// makes one plan per site).
const MaxTargets = 1000

// planTarget is one target and where it came from ("--target 2", "plans.csv row 7"), so that an
// error names what to fix.
type planTarget struct {
	URL, From string
}

// sitePlan is one plan to submit: a site and its targets.
type sitePlan struct {
	Site    string
	Targets []planTarget
}

// checkSitePlan validates a plan before anything is published: the site is an absolute http(s)
// URL without query or fragment; each target is one too, on the site's scheme and host, with a
// path under the site's path; no target twice; at most MaxTargets. Paths are compared as text
// and case-insensitively, as the planner does (SharePoint URLs are case-insensitive; names may
// hold '#' and '%'). Errors are usage errors naming the bad target and where it came from.
func checkSitePlan(p sitePlan) error {
	site, err := absoluteHTTP(p.Site)
	if err != nil {
		return usageErrorf("--site %s", err)
	}
	if len(p.Targets) == 0 {
		return usageErrorf("site %s: no target: give --target URL (repeatable) or --from-csv FILE", p.Site)
	}
	if len(p.Targets) > MaxTargets {
		return usageErrorf("site %s: %d targets, over the bound of %d per plan: split them into several plans", p.Site, len(p.Targets), MaxTargets)
	}
	root := strings.ToLower(strings.TrimRight(site.Path, "/"))
	seen := map[string]string{}
	for _, t := range p.Targets {
		u, err := absoluteHTTP(t.URL)
		if err != nil {
			return usageErrorf("%s: target %s", t.From, err)
		}
		if !strings.EqualFold(u.Scheme, site.Scheme) || !strings.EqualFold(u.Host, site.Host) {
			return usageErrorf("%s: target %q is not on the site's host %s://%s", t.From, t.URL, site.Scheme, site.Host)
		}
		path := strings.ToLower(strings.TrimRight(u.Path, "/"))
		if path != root && !strings.HasPrefix(path, root+"/") {
			return usageErrorf("%s: target %q is not under the site %s", t.From, t.URL, p.Site)
		}
		key := strings.ToLower(u.Host) + path
		if first, dup := seen[key]; dup {
			return usageErrorf("%s: target %q is given twice (first at %s)", t.From, t.URL, first)
		}
		seen[key] = t.From
	}
	return nil
}

// absoluteHTTP parses an absolute http(s) URL without query or fragment (the planner's rule).
func absoluteHTTP(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q does not parse as a URL", s)
	case (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	case u.RawQuery != "" || u.Fragment != "" || strings.Contains(s, "?"):
		return nil, fmt.Errorf("%q has a query or fragment", s)
	}
	return u, nil
}

// CSV columns of SPMT's bulk format ("Bulk upload SPMT migration tasks using JSON or CSV files",
// learn.microsoft.com/sharepointmigration/how-to-format-your-csv-file-for-data-content-migration):
// Source, Source DocLib, Source SubFolder, Target Web, Target DocLib, Target SubFolder, then the
// optional RegisterAsHubSite and AssociateWithHubURL. For an export the Target columns name the
// SharePoint Online side, the one read.
const (
	csvTargetWeb    = 3
	csvTargetDocLib = 4
	csvTargetSub    = 5
	csvMinColumns   = 6
	csvMaxColumns   = 8
)

// readPlanCSV reads plans from a CSV file in SPMT's bulk layout: each row's target is Target Web
// + "/" + Target DocLib (the library's name as in its URL, e.g. "Shared Documents") [+ "/" +
// Target SubFolder], and rows are grouped by Target Web into one plan per site, in the order the
// sites first appear. The Source columns (an on-premises or file-share source SPMT would copy
// from) are ignored. A header row (Target Web in column 4) is skipped. A row that does not fit
// (too few or too many columns, no Target Web or Target DocLib, a hub-site column set: hub
// registration is a migration step, not something to export) is a usage error naming it.
func readPlanCSV(r io.Reader, name string) ([]sitePlan, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var plans []sitePlan
	bySite := map[string]int{}
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		from := fmt.Sprintf("%s row %d", name, row)
		if err != nil {
			return nil, usageErrorf("%s: %v", from, err)
		}
		if row == 1 && len(rec) > csvTargetWeb && strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(rec[csvTargetWeb]), " ", ""), "TargetWeb") {
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) < csvMinColumns || len(rec) > csvMaxColumns {
			return nil, usageErrorf("%s: %d columns, want 6 (Source, Source DocLib, Source SubFolder, Target Web, Target DocLib, Target SubFolder) or 8 (with the hub-site columns)", from, len(rec))
		}
		for i := csvMinColumns; i < len(rec); i++ {
			if strings.TrimSpace(rec[i]) != "" {
				return nil, usageErrorf("%s: column %d (hub site) is set: hub-site registration is a migration step; an export reads, so leave it empty", from, i+1)
			}
		}
		web := strings.TrimRight(strings.TrimSpace(rec[csvTargetWeb]), "/")
		lib := strings.Trim(strings.TrimSpace(rec[csvTargetDocLib]), "/")
		sub := strings.Trim(strings.TrimSpace(rec[csvTargetSub]), "/")
		switch {
		case web == "":
			return nil, usageErrorf("%s: no Target Web (column 4): the site to read", from)
		case lib == "":
			return nil, usageErrorf("%s: no Target DocLib (column 5): amrpipe exports libraries, lists and folders, not whole sites", from)
		}
		target := web + "/" + lib
		if sub != "" {
			target += "/" + sub
		}
		key := strings.ToLower(web)
		i, ok := bySite[key]
		if !ok {
			i = len(plans)
			bySite[key] = i
			plans = append(plans, sitePlan{Site: web})
		}
		plans[i].Targets = append(plans[i].Targets, planTarget{URL: target, From: from})
	}
	if len(plans) == 0 {
		return nil, usageErrorf("%s: no rows", name)
	}
	return plans, nil
}
