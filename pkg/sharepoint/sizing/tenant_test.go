package sizing_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
)

// tenant is a fake SharePoint tree: the Sizer the planner asks, and the AMR it plans for.
type tenant struct {
	nodes map[string]*tnode // by lower-case URL
	lists []*tnode
}

type tnode struct {
	url, web, listID, listURL string
	kind                      sizing.Kind
	files                     int64 // direct files
	kids                      []*tnode
	parent                    *tnode
	items                     int64 // files and folders below, set by done
	unknown                   bool  // the Sizer does not know the totals
}

func newTenant() *tenant { return &tenant{nodes: make(map[string]*tnode)} }

func (t *tenant) addList(web, name string, files int64) *tnode {
	u := web + "/" + name
	n := &tnode{url: u, web: web, listID: "list-" + strings.ToLower(strings.NewReplacer("https://", "", "/", "-").Replace(u)),
		listURL: u, kind: sizing.KindList, files: files}
	t.nodes[strings.ToLower(u)] = n
	t.lists = append(t.lists, n)
	return n
}

func (t *tenant) addFolder(parent *tnode, name string, files int64) *tnode {
	n := &tnode{url: parent.url + "/" + name, web: parent.web, listID: parent.listID, listURL: parent.listURL,
		kind: sizing.KindFolder, files: files, parent: parent}
	parent.kids = append(parent.kids, n)
	t.nodes[strings.ToLower(n.url)] = n
	return n
}

// done computes every node's totals.
func (t *tenant) done() {
	var total func(n *tnode) int64
	total = func(n *tnode) int64 {
		n.items = n.files
		for _, k := range n.kids {
			n.items += 1 + total(k)
		}
		return n.items
	}
	for _, l := range t.lists {
		total(l)
	}
}

// loadTenant reads the format described in testdata/tenant.txt.
func loadTenant(tb testing.TB, path string) *tenant {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
	}()
	t := newTenant()
	var web string
	var stack []*tnode // stack[d] is the last node at depth d
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		d := (len(text) - len(strings.TrimLeft(text, " "))) / 2
		f := strings.Fields(text)
		var files int64
		if len(f) >= 3 {
			if files, err = strconv.ParseInt(f[2], 10, 64); err != nil {
				tb.Fatalf("%s:%d: %v", path, line, err)
			}
		}
		var n *tnode
		switch {
		case f[0] == "web" && len(f) == 2:
			web = f[1]
			continue
		case f[0] == "list" && len(f) >= 3 && d == 0:
			n = t.addList(web, f[1], files)
		case f[0] == "folder" && len(f) >= 3 && d >= 1 && d <= len(stack):
			n = t.addFolder(stack[d-1], f[1], files)
		default:
			tb.Fatalf("%s:%d: cannot read %q", path, line, text)
		}
		n.unknown = len(f) == 4 && f[3] == "?"
		stack = append(stack[:d], n)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	t.done()
	return t
}

func (t *tenant) node(tb testing.TB, u string) *tnode {
	tb.Helper()
	n, ok := t.nodes[strings.ToLower(u)]
	if !ok {
		tb.Fatalf("no node %s", u)
	}
	return n
}

func (n *tnode) planNode() sizing.Node {
	items := n.items
	if n.unknown {
		items = sizing.UnknownItems
	}
	return sizing.Node{URL: n.url, WebURL: n.web, ListID: n.listID, ListURL: n.listURL, Kind: n.kind, Items: items}
}

// sizer is the tenant as a sizing.Sizer, counting calls.
type sizer struct {
	t                 *tenant
	resolves, listing int
}

func (s *sizer) Resolve(_ context.Context, u string) (sizing.Node, error) {
	s.resolves++
	n, ok := s.t.nodes[strings.ToLower(u)]
	if !ok {
		return sizing.Node{}, fmt.Errorf("resolve %s: not found", u)
	}
	return n.planNode(), nil
}

func (s *sizer) Children(_ context.Context, u string) ([]sizing.Node, error) {
	s.listing++
	n, ok := s.t.nodes[strings.ToLower(u)]
	if !ok {
		return nil, fmt.Errorf("children %s: not found", u)
	}
	out := make([]sizing.Node, len(n.kids))
	for i, k := range n.kids {
		out[i] = k.planNode()
	}
	return out, nil
}

// emission counts what the parser published: each node's own object, and its direct files as
// one unit (a job emits all of a folder's direct files or none of them).
type emission struct {
	self, files map[*tnode]int
	principals  int // jobs that published principals
	jobs        []sizing.JobSpec
}

// run plans req and simulates AMR and the parser for every job, feeding probe output back
// through Continue, as the pipeline does.
func run(ctx context.Context, t *tenant, p *sizing.Planner, req sizing.Request) (*emission, error) {
	sz := &sizer{t: t}
	jobs, err := p.Plan(ctx, req, sz)
	if err != nil {
		return nil, err
	}
	e := &emission{self: map[*tnode]int{}, files: map[*tnode]int{}}
	for len(jobs) > 0 {
		j := jobs[0]
		jobs = jobs[1:]
		e.jobs = append(e.jobs, j)
		if err := t.emit(e, j); err != nil {
			return nil, fmt.Errorf("job %s: %w", j.ID, err)
		}
		if !j.Probe {
			continue
		}
		n := t.nodes[strings.ToLower(j.URLs[0])]
		pr := sizing.ProbeResult{Job: j}
		for _, k := range n.kids {
			// What the parser knows: URL and totals, as SMTotal* fields or not at all.
			sf := sizing.Node{URL: k.url, Items: k.items}
			if k.unknown {
				sf.Items = sizing.UnknownItems
			}
			pr.Subfolders = append(pr.Subfolders, sf)
		}
		more, err := p.Continue(ctx, pr, sz)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, more...)
	}
	return e, nil
}

// emit applies AMR (a job on u returns u and its descendants, or u and its direct children when
// IncludeDirectDescendantsOnly; with a change token, every object of the list, as if all
// changed) and then the job's Emit policy and Scope.
func (t *tenant) emit(e *emission, j sizing.JobSpec) error {
	if j.EmitPrincipals {
		e.principals++
	}
	for _, u := range j.URLs {
		n, ok := t.nodes[strings.ToLower(u)]
		if !ok {
			return fmt.Errorf("AMR: %s is not a list or folder", u)
		}
		if !strings.EqualFold(n.web, j.WebURL) {
			return fmt.Errorf("AMR: %s is in web %s, the job's web is %s", u, n.web, j.WebURL)
		}
		if j.Options.StartChangeToken != "" && n.kind != sizing.KindList {
			return fmt.Errorf("AMR: change token on %s, which is not a list", u)
		}
		if j.Emit == sizing.EmitSecurityOnly {
			continue
		}
		depth := -1 // unlimited
		if j.Options.IncludeDirectDescendantsOnly {
			depth = 1
		}
		n.walk(depth, func(x *tnode, d int) {
			if !inScope(x.url, j.Scope) {
				return
			}
			// EmitProbe drops folders other than the job's URL; they are at depth 1.
			if j.Emit == sizing.EmitAll || d == 0 {
				e.self[x]++
			}
			if d < depth || depth < 0 {
				if x.files > 0 {
					e.files[x]++
				}
			}
		})
	}
	return nil
}

// walk visits n at depth 0 and its subfolders down to maxDepth (-1: all).
func (n *tnode) walk(maxDepth int, f func(x *tnode, d int)) {
	var rec func(x *tnode, d int)
	rec = func(x *tnode, d int) {
		f(x, d)
		if maxDepth >= 0 && d >= maxDepth {
			return
		}
		for _, k := range x.kids {
			rec(k, d+1)
		}
	}
	rec(n, 0)
}

func inScope(u string, scope []string) bool {
	if len(scope) == 0 {
		return true
	}
	lu := strings.ToLower(u)
	return slices.ContainsFunc(scope, func(s string) bool {
		ls := strings.ToLower(s)
		return lu == ls || strings.HasPrefix(lu, ls+"/")
	})
}

// checkExactlyOnce reports every object under the targets that was not emitted exactly once,
// and every object emitted outside them.
func checkExactlyOnce(t *tenant, e *emission, targets []string) []string {
	var bad []string
	requested := map[*tnode]bool{}
	for _, u := range targets {
		t.nodes[strings.ToLower(strings.TrimRight(u, "/"))].walk(-1, func(x *tnode, _ int) { requested[x] = true })
	}
	for _, n := range t.nodes {
		want := 0
		if requested[n] {
			want = 1
		}
		if e.self[n] != want {
			bad = append(bad, fmt.Sprintf("%s emitted %d times, want %d", n.url, e.self[n], want))
		}
		if n.files > 0 && e.files[n] != want {
			bad = append(bad, fmt.Sprintf("files of %s emitted %d times, want %d", n.url, e.files[n], want))
		}
	}
	slices.Sort(bad)
	return bad
}
