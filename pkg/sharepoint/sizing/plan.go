package sizing

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// Plan turns a plan into its first jobs: the security job, incremental jobs, and full reads by
// the size rules, probes included. It asks the Sizer about every target (and, for incremental
// folder targets, their lists).
func (p *Planner) Plan(ctx context.Context, req Request, sz Sizer) ([]JobSpec, error) {
	site, err := checkRequest(req)
	if err != nil {
		return nil, err
	}
	if sz == nil {
		return nil, errNoSizer
	}
	nodes, err := resolveTargets(ctx, req, site, sz)
	if err != nil {
		return nil, err
	}
	s := scope{
		planID: req.PlanID, siteURL: site, opts: contentOptions(req.Options),
		principals: !req.Options.IncludeSecurity, keepRoots: req.Incremental,
	}
	var jobs []JobSpec
	if req.Options.IncludeSecurity {
		jobs = append(jobs, securityJob(s, nodes))
	}
	full := nodes
	if req.Incremental {
		var inc []JobSpec
		if inc, full, err = p.incremental(ctx, req, s, nodes, sz); err != nil {
			return nil, err
		}
		jobs = append(jobs, inc...)
	}
	sized, err := p.sizeJobs(ctx, s, full, sz)
	if err != nil {
		return nil, err
	}
	return finish(append(jobs, sized...)), nil
}

// Continue plans the direct subfolders a probe job found, by the same rules. Subfolders whose
// totals are unknown are resolved through the Sizer when one is given, else probed in turn.
func (p *Planner) Continue(ctx context.Context, pr ProbeResult, sz Sizer) ([]JobSpec, error) {
	job := pr.Job
	if !job.Probe || len(job.URLs) != 1 || len(job.ListIDs) != 1 || job.PlanID == "" || job.ID == "" {
		return nil, fmt.Errorf("continue job %q: not a probe job of a plan", job.ID)
	}
	parent := Node{URL: job.URLs[0], WebURL: job.WebURL, ListID: job.ListIDs[0]}
	listed, err := listedSizes(ctx, parent.URL, pr.Subfolders, sz)
	if err != nil {
		return nil, fmt.Errorf("continue job %s: size the subfolders of %s: %w", job.ID, parent.URL, err)
	}
	nodes := make([]Node, 0, len(pr.Subfolders))
	for _, sf := range pr.Subfolders {
		inherit(&sf, parent)
		if items, ok := listed[ScopeKey(sf.URL)]; ok && sf.Items == UnknownItems {
			sf.Items = items
		}
		if sf.Items == UnknownItems && sz != nil {
			r, err := sz.Resolve(ctx, sf.URL)
			if err != nil {
				return nil, fmt.Errorf("continue job %s: size %s: %w", job.ID, sf.URL, err)
			}
			sf.Items = r.Items
		}
		if err := sf.check(false); err != nil {
			return nil, fmt.Errorf("continue job %s: %w", job.ID, err)
		}
		if err := sameParent(sf, parent); err != nil {
			return nil, fmt.Errorf("continue job %s: %w", job.ID, err)
		}
		nodes = append(nodes, sf)
	}
	opts := job.Options
	opts.IncludeDirectDescendantsOnly = false
	s := scope{planID: job.PlanID, siteURL: job.SiteURL, opts: opts, principals: job.EmitPrincipals, parentID: job.ID}
	jobs, err := p.sizeJobs(ctx, s, dedupe(nodes), sz)
	if err != nil {
		return nil, fmt.Errorf("continue job %s: %w", job.ID, err)
	}
	return finish(jobs), nil
}

// listedSizes sizes a probe's subfolders in one request of sz (SubfolderSizer) when more than one
// of them is of unknown size: the listing then replaces a request per subfolder. It returns nil
// when sz cannot, or when asking per subfolder costs no more.
func listedSizes(ctx context.Context, parentURL string, subs []Node, sz Sizer) (map[string]int64, error) {
	ss, ok := sz.(SubfolderSizer)
	if !ok {
		return nil, nil
	}
	unknown := 0
	for _, sf := range subs {
		if sf.Items == UnknownItems {
			unknown++
		}
	}
	if unknown < 2 {
		return nil, nil
	}
	return ss.SizeSubfolders(ctx, parentURL)
}

// checkRequest validates what the planner does not look up, and returns the clean site URL.
func checkRequest(req Request) (string, error) {
	if req.PlanID == "" {
		return "", errors.New("plan: no plan id")
	}
	site, err := cleanURL(req.SiteURL)
	if err != nil {
		return "", fmt.Errorf("plan %s: site: %w", req.PlanID, err)
	}
	if len(req.Targets) == 0 {
		return "", fmt.Errorf("plan %s: no targets", req.PlanID)
	}
	if req.Options.IncludeDirectDescendantsOnly || req.Options.StartChangeToken != "" {
		return "", fmt.Errorf("plan %s: IncludeDirectDescendantsOnly and StartChangeToken are set by the planner", req.PlanID)
	}
	return site, nil
}

// contentOptions are the plan's read options for content jobs: no security (the security job
// reads it), recursive, no token.
func contentOptions(o spo.ReadOptions) spo.ReadOptions {
	return spo.ReadOptions{
		IncludeVersions:         o.IncludeVersions,
		IncludePermission:       o.IncludePermission,
		IncludeExtendedMetadata: o.IncludeExtendedMetadata,
	}
}

// resolveTargets sizes every target, checks it lies in the site, and drops targets inside other
// targets. The result is sorted by URL.
func resolveTargets(ctx context.Context, req Request, site string, sz Sizer) ([]Node, error) {
	nodes := make([]Node, 0, len(req.Targets))
	seen := make(map[string]bool, len(req.Targets))
	for _, t := range req.Targets {
		u, err := cleanURL(t)
		if err != nil {
			return nil, fmt.Errorf("plan %s: target: %w", req.PlanID, err)
		}
		if seen[strings.ToLower(u)] {
			continue
		}
		seen[strings.ToLower(u)] = true
		if !under(u, site) {
			return nil, fmt.Errorf("plan %s: target %s is not in site %s", req.PlanID, u, site)
		}
		n, err := sz.Resolve(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("plan %s: size %s: %w", req.PlanID, u, err)
		}
		if err := n.check(true); err != nil {
			return nil, fmt.Errorf("plan %s: target %s: %w", req.PlanID, u, err)
		}
		if !under(n.WebURL, site) {
			return nil, fmt.Errorf("plan %s: target %s is in web %s outside site %s", req.PlanID, u, n.WebURL, site)
		}
		nodes = append(nodes, n)
	}
	nodes = dedupe(nodes)
	// After dedupe's sort a target's descendants follow it directly.
	out := nodes[:0]
	for _, n := range nodes {
		if len(out) > 0 && under(n.URL, out[len(out)-1].URL) {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// securityJob reads site-collection users, groups and role definitions once, on the top-most
// target, as shallow as AMR allows.
func securityJob(s scope, nodes []Node) JobSpec {
	top := slices.MinFunc(nodes, func(a, b Node) int {
		return cmp.Or(
			cmp.Compare(depth(a.URL), depth(b.URL)),
			cmp.Compare(uint64(a.Items), uint64(b.Items)), // unknown (-1) sorts last
			strings.Compare(sortKey(a.URL), sortKey(b.URL)),
		)
	})
	return JobSpec{
		PlanID: s.planID, SiteURL: s.siteURL, WebURL: top.WebURL, URLs: []string{top.URL},
		Options: spo.ReadOptions{IncludeSecurity: true, IncludeDirectDescendantsOnly: true},
		Emit:    EmitSecurityOnly, EmitPrincipals: true,
	}
}

// finish gives jobs their ids and sorts them: the security job, then jobs whose change token
// is a list's, then the rest, each by web and URL.
func finish(jobs []JobSpec) []JobSpec {
	type keyed struct {
		rank int
		key  string
	}
	keys := make(map[string]keyed, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		j.ID = jobID(j)
		rank := 2
		switch {
		case j.Emit == EmitSecurityOnly:
			rank = 0
		case j.TokenListID != "":
			rank = 1 // created before the other jobs reading its list
		}
		keys[j.ID] = keyed{rank, webKey(j.WebURL, j.URLs[0])}
	}
	slices.SortFunc(jobs, func(a, b JobSpec) int {
		ka, kb := keys[a.ID], keys[b.ID]
		return cmp.Or(cmp.Compare(ka.rank, kb.rank), strings.Compare(ka.key, kb.key), strings.Compare(a.ID, b.ID))
	})
	return jobs
}

// jobID hashes the plan id and everything that makes the job what it is, except the size
// estimate: a redelivered plan yields the same ids, and the services de-duplicate on them.
func jobID(j *JobSpec) string {
	h := sha256.New()
	w := func(format string, args ...any) { _, _ = fmt.Fprintf(h, format, args...) }
	w("amrpipe-job-v1\n%q\n%q\n%q\n", j.PlanID, j.SiteURL, j.WebURL)
	writeList(h, "url", j.URLs)
	o := j.Options
	w("options %t %t %t %t %t %q\n", o.IncludeVersions, o.IncludeSecurity, o.IncludePermission,
		o.IncludeDirectDescendantsOnly, o.IncludeExtendedMetadata, o.StartChangeToken)
	w("emit %d %t probe %t token %q\n", j.Emit, j.EmitPrincipals, j.Probe, j.TokenListID)
	writeList(h, "scope", j.Scope)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func writeList(w io.Writer, label string, items []string) {
	for _, s := range items {
		_, _ = fmt.Fprintf(w, "%s %q\n", label, s)
	}
}
