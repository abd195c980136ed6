package sizing

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// scope is what the jobs planned from one plan or probe result share.
type scope struct {
	planID, siteURL string
	opts            spo.ReadOptions // content read options: no security, no token, recursive
	principals      bool            // EmitPrincipals of content jobs
	parentID        string
	keepRoots       bool // list roots are never batched (their change token is wanted)
}

// check validates a node from a Sizer or a probe result and cleans its URLs. A folder needs its
// ListURL only when withList is set (incremental planning uses it).
func (n *Node) check(withList bool) error {
	var err error
	if n.URL, err = cleanURL(n.URL); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if n.WebURL, err = cleanURL(n.WebURL); err != nil {
		return fmt.Errorf("node %s: web: %w", n.URL, err)
	}
	switch {
	case !under(n.URL, n.WebURL):
		return fmt.Errorf("node %s: not under its web %s", n.URL, n.WebURL)
	case n.ListID == "":
		return fmt.Errorf("node %s: no list id", n.URL)
	case n.Items < UnknownItems:
		return fmt.Errorf("node %s: item count %d", n.URL, n.Items)
	}
	switch n.Kind {
	case KindList:
		if n.ListURL == "" {
			n.ListURL = n.URL
		}
		if !sameURL(strings.TrimRight(n.ListURL, "/"), n.URL) {
			return fmt.Errorf("node %s: a list root with list URL %s", n.URL, n.ListURL)
		}
		n.ListURL = n.URL
	case KindFolder:
		if n.ListURL == "" && !withList {
			return nil
		}
		if n.ListURL, err = cleanURL(n.ListURL); err != nil {
			return fmt.Errorf("node %s: list: %w", n.URL, err)
		}
		if !under(n.URL, n.ListURL) || sameURL(n.URL, n.ListURL) {
			return fmt.Errorf("node %s: folder not below its list %s", n.URL, n.ListURL)
		}
	default:
		return fmt.Errorf("node %s: kind %d is not a list or folder (AMR reads nothing else)", n.URL, n.Kind)
	}
	return nil
}

// contentJob reads nodes (all under one web) recursively, emitting everything.
func (s scope) contentJob(nodes []Node) JobSpec {
	j := JobSpec{
		PlanID: s.planID, SiteURL: s.siteURL, WebURL: nodes[0].WebURL,
		URLs: make([]string, 0, len(nodes)), Multi: len(nodes) > 1,
		Options: s.opts, Emit: EmitAll, EmitPrincipals: s.principals, ParentJobID: s.parentID,
	}
	for _, n := range nodes {
		j.URLs = append(j.URLs, n.URL)
		j.Items += n.Items + 1
		if !slices.Contains(j.ListIDs, n.ListID) {
			j.ListIDs = append(j.ListIDs, n.ListID)
		}
		if n.ChangeToken != "" {
			lt := ListToken{ListID: n.ListID, Token: n.ChangeToken, Read: n.TokenRead}
			if n.Kind == KindFolder {
				lt.Scope = n.URL
			}
			j.ListTokens = append(j.ListTokens, lt)
		}
	}
	slices.Sort(j.ListIDs)
	if len(nodes) == 1 && nodes[0].Kind == KindList {
		j.TokenListID = nodes[0].ListID
	}
	return j
}

// shallowJob reads n and its direct children, emitting n and its direct non-folder children.
// A probe's output comes back through Continue; items is the estimate, or -1.
func (s scope) shallowJob(n Node, probe bool, items int64) JobSpec {
	j := s.contentJob([]Node{n})
	j.Options.IncludeDirectDescendantsOnly = true
	j.Emit = EmitProbe
	j.Probe = probe
	j.Items = items
	return j
}

// sizeJobs plans full reads of disjoint nodes by the size rules.
func (p *Planner) sizeJobs(ctx context.Context, s scope, nodes []Node, sz Sizer) ([]JobSpec, error) {
	var jobs []JobSpec
	var small []Node
	queue := slices.Clone(nodes)
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("plan %s: %w", s.planID, err)
		}
		n := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		switch {
		case n.Items == UnknownItems || n.Items > p.cfg.Large:
			if !p.cfg.ListLargeFolders {
				jobs = append(jobs, s.shallowJob(n, true, -1))
				continue
			}
			kids, items, err := p.children(ctx, n, sz)
			if err != nil {
				return nil, err
			}
			jobs = append(jobs, s.shallowJob(n, false, items))
			queue = append(queue, kids...)
		case n.Items < p.cfg.Small && !(s.keepRoots && n.Kind == KindList):
			small = append(small, n)
		default:
			jobs = append(jobs, s.contentJob([]Node{n}))
		}
	}
	return append(jobs, p.batch(s, small)...), nil
}

// children lists n's direct subfolders through the Sizer, and estimates what a shallow job on n
// emits: n and its direct files (-1 when a total is unknown). The estimate counts each subfolder as
// Items+1; with sizes in files (the package documentation) it undercounts by the number of
// subfolders, and an estimate below 1 reads as unknown.
func (p *Planner) children(ctx context.Context, n Node, sz Sizer) ([]Node, int64, error) {
	if sz == nil {
		return nil, 0, errNoSizer
	}
	kids, err := sz.Children(ctx, n.URL)
	if err != nil {
		return nil, 0, fmt.Errorf("list subfolders of %s: %w", n.URL, err)
	}
	for i := range kids {
		k := &kids[i]
		inherit(k, n)
		if err := k.check(false); err != nil {
			return nil, 0, fmt.Errorf("subfolders of %s: %w", n.URL, err)
		}
		if err := sameParent(*k, n); err != nil {
			return nil, 0, err
		}
	}
	kids = dedupe(kids)
	items := n.Items + 1
	unknown := n.Items == UnknownItems
	for _, k := range kids {
		items -= k.Items + 1
		unknown = unknown || k.Items == UnknownItems
	}
	if unknown || items < 1 {
		items = -1 // unknown, or totals that disagree
	}
	return kids, items, nil
}

// inherit fills a subfolder's empty web and list fields from its parent.
func inherit(k *Node, parent Node) {
	k.Kind = KindFolder
	if k.WebURL == "" {
		k.WebURL = parent.WebURL
	}
	if k.ListID == "" {
		k.ListID = parent.ListID
	}
	if k.ListURL == "" {
		k.ListURL = parent.ListURL
	}
}

// sameParent checks that k is a direct subfolder of parent in the same web and list.
func sameParent(k, parent Node) error {
	if !directChild(k.URL, parent.URL) || !sameURL(k.WebURL, parent.WebURL) || k.ListID != parent.ListID {
		return fmt.Errorf("%s is not a direct subfolder of %s in web %s, list %s", k.URL, parent.URL, parent.WebURL, parent.ListID)
	}
	return nil
}

// dedupe sorts nodes by URL and drops repeats.
func dedupe(nodes []Node) []Node {
	keyed := sortNodes(nodes, func(n Node) string { return sortKey(n.URL) })
	out := nodes[:0]
	for i, k := range keyed {
		if i == 0 || k.key != keyed[i-1].key {
			out = append(out, k.n)
		}
	}
	return out
}

type keyedNode struct {
	key string
	n   Node
}

// sortNodes orders nodes by key, computing each key once.
func sortNodes(nodes []Node, key func(Node) string) []keyedNode {
	keyed := make([]keyedNode, len(nodes))
	for i, n := range nodes {
		keyed[i] = keyedNode{key: key(n), n: n}
	}
	slices.SortFunc(keyed, func(a, b keyedNode) int { return strings.Compare(a.key, b.key) })
	return keyed
}

// batch packs small nodes into multi-URL jobs: one web per job, at most MaxURLsPerJob URLs and
// MaxItemsPerBatch items (Items+1 per URL), greedily in web and URL order.
func (p *Planner) batch(s scope, small []Node) []JobSpec {
	var jobs []JobSpec
	var cur []Node
	var sum int64
	curWeb := ""
	for _, k := range sortNodes(small, func(n Node) string { return webKey(n.WebURL, n.URL) }) {
		w, web := k.n.Items+1, strings.ToLower(k.n.WebURL)
		if len(cur) > 0 && (web != curWeb || len(cur) >= p.cfg.MaxURLsPerJob || sum+w > p.cfg.MaxItemsPerBatch) {
			jobs = append(jobs, s.contentJob(cur))
			cur, sum = nil, 0
		}
		cur = append(cur, k.n)
		sum += w
		curWeb = web
	}
	if len(cur) > 0 {
		jobs = append(jobs, s.contentJob(cur))
	}
	return jobs
}

// webKey groups by web (a web before its subwebs), then orders by URL with descendants after
// their ancestor.
func webKey(web, u string) string {
	return strings.ToLower(web) + "\x00" + sortKey(u)
}
