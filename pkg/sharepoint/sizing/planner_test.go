package sizing_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

const site = "https://contoso.example/sites/hr"

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testConfig() sizing.Config {
	return sizing.Config{Small: 10, Large: 100, Now: func() time.Time { return now }}
}

func newPlanner(tb testing.TB, cfg sizing.Config) *sizing.Planner {
	tb.Helper()
	p, err := sizing.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func abs(rel ...string) []string {
	out := make([]string, len(rel))
	for i, r := range rel {
		out[i] = site + "/" + r
	}
	return out
}

// describe renders a job as "kind url,url items=N", URLs relative to the site.
func describe(j sizing.JobSpec) string {
	kind := "single"
	switch {
	case j.Emit == sizing.EmitSecurityOnly:
		kind = "security"
	case j.Options.StartChangeToken != "":
		kind = "incremental"
	case j.Probe:
		kind = "probe"
	case j.Emit == sizing.EmitProbe:
		kind = "shallow"
	case j.Multi:
		kind = "multi"
	}
	rel := make([]string, len(j.URLs))
	for i, u := range j.URLs {
		rel[i] = strings.TrimPrefix(u, site+"/")
	}
	s := fmt.Sprintf("%s %s items=%d", kind, strings.Join(rel, ","), j.Items)
	if len(j.Scope) > 0 {
		s += fmt.Sprintf(" scope=%d", len(j.Scope))
	}
	return s
}

func describeAll(jobs []sizing.JobSpec) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = describe(j)
	}
	return out
}

// bigProbed is how Docs/Big is read: probes down to the folders of at most Large items.
var bigProbed = []string{
	"probe Docs/Big items=-1",
	"single Docs/Big/B1 items=61",
	"single Docs/Big/B2 items=6",
	"probe Docs/Big/B3 items=-1",
	"probe Docs/Big/B3/B31 items=-1",
	"single Docs/Big/B3/B32 items=3",
}

func TestPlanTiers(t *testing.T) {
	tn := loadTenant(t, "testdata/tenant.txt")
	tests := []struct {
		name    string
		cfg     func(*sizing.Config)
		targets []string
		want    []string // every job, Continue's included, in the order run sees them
	}{
		{
			name:    "small folders and a small library share one multi-URL job",
			targets: abs("Docs/Small2", "Policies", "Docs/Small1"),
			want:    []string{"multi Docs/Small1,Docs/Small2,Policies items=19"},
		},
		{
			name:    "a lone small folder is a single-URL job",
			targets: abs("Docs/Small1"),
			want:    []string{"single Docs/Small1 items=6"},
		},
		{
			name:    "a folder between Small and Large gets its own job",
			targets: abs("Docs/Medium"),
			want:    []string{"single Docs/Medium items=51"},
		},
		{
			name:    "the thresholds are inclusive for the single job",
			cfg:     func(c *sizing.Config) { c.Small, c.Large = 6, 6 },
			targets: abs("Docs/Small1", "Policies"),
			want:    []string{"single Policies items=7", "single Docs/Small1 items=6"},
		},
		{
			name:    "a large folder is probed and its subfolders planned recursively",
			targets: abs("Docs/Big"),
			want:    bigProbed,
		},
		{
			name:    "a library of unknown size is probed",
			targets: abs("Forms"),
			want:    []string{"probe Forms items=-1", "single Forms/F1 items=4", "single Forms/F2 items=31"},
		},
		{
			name:    "targets inside other targets are dropped",
			targets: abs("Docs/Big/B1", "Docs/Big", "docs/big/", "Docs/Big/B3/B31"),
			want:    bigProbed,
		},
		{
			name:    "names with '#' and '%' pass through as they are",
			targets: abs("eng/Odd/B%25", "eng/Odd/A#1"),
			want:    []string{"multi eng/Odd/A#1,eng/Odd/B%25 items=7"},
		},
		{
			name:    "a lower URL cap splits batches",
			cfg:     func(c *sizing.Config) { c.MaxURLsPerJob = 2 },
			targets: abs("Docs/Small1", "Docs/Small2", "Policies", "Docs/Big/B2"),
			want:    []string{"multi Docs/Big/B2,Docs/Small1 items=12", "multi Docs/Small2,Policies items=13"},
		},
		{
			name:    "the item cap splits batches",
			cfg:     func(c *sizing.Config) { c.MaxItemsPerBatch = 12 },
			targets: abs("Docs/Small1", "Docs/Small2", "Policies"),
			want:    []string{"single Policies items=7", "multi Docs/Small1,Docs/Small2 items=12"},
		},
		{
			name:    "webs are never mixed in a batch",
			targets: abs("Docs/Small1", "eng/Specs", "Policies", "eng/Specs/S1"),
			want:    []string{"single eng/Specs items=8", "multi Docs/Small1,Policies items=13"},
		},
		{
			name:    "listing large folders replaces probes with shallow jobs",
			cfg:     func(c *sizing.Config) { c.ListLargeFolders = true },
			targets: abs("Docs/Big"),
			want: []string{
				"shallow Docs/Big items=51",
				"single Docs/Big/B1 items=61",
				"multi Docs/Big/B2,Docs/Big/B3/B32 items=9",
				"shallow Docs/Big/B3 items=1",
				"shallow Docs/Big/B3/B31 items=121",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			req := sizing.Request{PlanID: "plan-1", SiteURL: site, Targets: tt.targets,
				Options: spo.ReadOptions{IncludeVersions: true}}
			e, err := run(context.Background(), tn, newPlanner(t, cfg), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := describeAll(e.jobs); !slices.Equal(got, tt.want) {
				t.Errorf("jobs:\n  got  %q\n  want %q", got, tt.want)
			}
			if bad := checkExactlyOnce(tn, e, tt.targets); len(bad) > 0 {
				t.Errorf("coverage: %s", strings.Join(bad, "; "))
			}
			for _, j := range e.jobs {
				if !j.Options.IncludeVersions || j.Options.IncludeSecurity || j.Options.IncludeDirectDescendantsOnly != (j.Emit == sizing.EmitProbe) {
					t.Errorf("%s: options %+v", describe(j), j.Options)
				}
			}
		})
	}
}

func TestURLCapDefault(t *testing.T) {
	const folders = 12_001
	tn := newTenant()
	lib := tn.addList(site, "Big", 0)
	targets := make([]string, folders)
	for i := range folders {
		targets[i] = tn.addFolder(lib, fmt.Sprintf("f%05d", i), 1).url
	}
	tn.done()
	p := newPlanner(t, sizing.Config{Small: 10, Large: 1 << 40})
	jobs, err := p.Plan(context.Background(), sizing.Request{PlanID: "p", SiteURL: site, Targets: targets}, &sizer{t: tn})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, j := range jobs {
		sizes = append(sizes, len(j.URLs))
	}
	if want := []int{5000, 5000, 2001}; !slices.Equal(sizes, want) {
		t.Errorf("URLs per job = %v, want %v", sizes, want)
	}
}

func TestSecurityOncePerSite(t *testing.T) {
	tn := loadTenant(t, "testdata/tenant.txt")
	req := sizing.Request{PlanID: "plan-sec", SiteURL: site, Targets: abs("Docs/Medium", "eng/Specs", "Policies", "Docs/Big"),
		Options: spo.ReadOptions{IncludeSecurity: true, IncludePermission: true}}
	e, err := run(context.Background(), tn, newPlanner(t, testConfig()), req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(e.jobs[0]), "security Policies items=0"; got != want {
		t.Errorf("first job = %s, want %s", got, want)
	}
	sec := e.jobs[0].Options
	if !sec.IncludeSecurity || !sec.IncludeDirectDescendantsOnly || sec.IncludePermission || sec.IncludeVersions {
		t.Errorf("security job options = %+v", sec)
	}
	for _, j := range e.jobs[1:] {
		if j.Options.IncludeSecurity || j.Emit == sizing.EmitSecurityOnly || j.EmitPrincipals || !j.Options.IncludePermission {
			t.Errorf("%s: options %+v emit %s principals %t", describe(j), j.Options, j.Emit, j.EmitPrincipals)
		}
	}
	if e.principals != 1 {
		t.Errorf("%d jobs publish principals, want 1", e.principals)
	}
	if bad := checkExactlyOnce(tn, e, req.Targets); len(bad) > 0 {
		t.Errorf("coverage: %s", strings.Join(bad, "; "))
	}
}

func TestIncremental(t *testing.T) {
	tn := loadTenant(t, "testdata/tenant.txt")
	docs, policies := tn.node(t, site+"/Docs").listID, tn.node(t, site+"/Policies").listID
	fresh := sizing.StoredToken{Token: "1;3;docs;1;42", IssuedAt: now.Add(-59 * 24 * time.Hour)}
	stale := sizing.StoredToken{Token: "1;3;docs;1;7", IssuedAt: now.Add(-60 * 24 * time.Hour)}
	tests := []struct {
		name       string
		cfg        func(*sizing.Config)
		notInc     bool
		targets    []string
		tokens     map[string]sizing.StoredToken
		scoped     map[string]sizing.StoredToken // by folder URL
		rejected   map[string]bool
		want       []string
		wantTokens []string // the TokenListIDs of the jobs, in order
		wantStart  string   // the token the incremental job starts from (default: fresh)
	}{
		{
			name:    "a fresh token reads the library's changes",
			targets: abs("Policies"), tokens: map[string]sizing.StoredToken{policies: fresh},
			want: []string{"incremental Policies items=7"}, wantTokens: []string{policies},
		},
		{
			name:    "folder targets of a list share one incremental job on the list, scoped",
			targets: abs("Docs/Medium", "Docs/Small1"), tokens: map[string]sizing.StoredToken{docs: fresh},
			want: []string{"incremental Docs items=309 scope=2"}, wantTokens: []string{docs},
		},
		{
			name:    "a token of 60 days falls back to a full read, the library kept out of batches",
			targets: abs("Policies", "Docs/Small1"), tokens: map[string]sizing.StoredToken{policies: stale},
			want: []string{"single Policies items=7", "single Docs/Small1 items=6"}, wantTokens: []string{policies},
		},
		{
			name:    "a rejected token falls back to a full read",
			targets: abs("Docs"), tokens: map[string]sizing.StoredToken{docs: fresh}, rejected: map[string]bool{docs: true},
			want: []string{
				"probe Docs items=-1",
				"probe Docs/Big items=-1",
				"single Docs/Medium items=51",
				"multi Docs/Small1,Docs/Small2 items=12",
				"single Docs/Big/B1 items=61",
				"single Docs/Big/B2 items=6",
				"probe Docs/Big/B3 items=-1",
				"probe Docs/Big/B3/B31 items=-1",
				"single Docs/Big/B3/B32 items=3",
			},
			wantTokens: []string{docs},
		},
		{
			name:    "a list over IncrementalMaxItems is read in full",
			cfg:     func(c *sizing.Config) { c.IncrementalMaxItems = 300 },
			targets: abs("Docs/Medium", "Policies"),
			tokens:  map[string]sizing.StoredToken{docs: fresh, policies: fresh},
			want:    []string{"incremental Policies items=7", "single Docs/Medium items=51"}, wantTokens: []string{policies},
		},
		{
			name:    "folders with tokens of their own: one job from the oldest, the folder without one read in full",
			targets: abs("Docs/Medium", "Docs/Small1", "Docs/Small2"),
			scoped: map[string]sizing.StoredToken{abs("Docs/Medium")[0]: fresh,
				abs("Docs/Small1")[0]: {Token: "1;3;docs;1;50", IssuedAt: now.Add(-time.Hour)}},
			want:       []string{"incremental Docs items=309 scope=2", "single Docs/Small2 items=6"},
			wantTokens: []string{docs},
		},
		{
			name:    "a folder's own token newer than its list's is the one used",
			targets: abs("Docs/Small1"), tokens: map[string]sizing.StoredToken{docs: fresh},
			scoped:     map[string]sizing.StoredToken{abs("Docs/Small1")[0]: {Token: "1;3;docs;1;50", IssuedAt: now.Add(-time.Hour)}},
			want:       []string{"incremental Docs items=309 scope=1"},
			wantTokens: []string{docs}, wantStart: "1;3;docs;1;50",
		},
		{
			name:    "a folder's stale token reads it in full",
			targets: abs("Docs/Small1"), scoped: map[string]sizing.StoredToken{abs("Docs/Small1")[0]: stale},
			want: []string{"single Docs/Small1 items=6"},
		},
		{
			name:    "a rejected list's folder tokens are not used either",
			targets: abs("Docs/Small1"), scoped: map[string]sizing.StoredToken{abs("Docs/Small1")[0]: fresh}, rejected: map[string]bool{docs: true},
			want: []string{"single Docs/Small1 items=6"},
		},
		{
			name:    "tokens are ignored when the plan is not incremental",
			notInc:  true,
			targets: abs("Policies", "Docs/Small1"), tokens: map[string]sizing.StoredToken{policies: fresh},
			want: []string{"multi Docs/Small1,Policies items=13"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			scoped := map[string]sizing.StoredToken{}
			for u, tok := range tt.scoped {
				scoped[sizing.ScopeKey(u)] = tok
			}
			req := sizing.Request{PlanID: "plan-inc", SiteURL: site, Targets: tt.targets, Incremental: !tt.notInc,
				ChangeTokens: tt.tokens, ScopeTokens: scoped, TokenRejected: tt.rejected}
			e, err := run(context.Background(), tn, newPlanner(t, cfg), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := describeAll(e.jobs); !slices.Equal(got, tt.want) {
				t.Errorf("jobs:\n  got  %q\n  want %q", got, tt.want)
			}
			var tokens []string
			for _, j := range e.jobs {
				if j.TokenListID != "" {
					tokens = append(tokens, j.TokenListID)
				}
			}
			if !slices.Equal(tokens, tt.wantTokens) {
				t.Errorf("TokenListIDs = %q, want %q", tokens, tt.wantTokens)
			}
			start := cmp.Or(tt.wantStart, fresh.Token)
			for _, j := range e.jobs {
				if tok := j.Options.StartChangeToken; tok != "" && tok != start {
					t.Errorf("%s uses token %q, want %q", describe(j), tok, start)
				}
			}
			if bad := checkExactlyOnce(tn, e, tt.targets); len(bad) > 0 {
				t.Errorf("coverage: %s", strings.Join(bad, "; "))
			}
		})
	}
}

// brokenSizer answers one node wrongly.
type brokenSizer struct {
	sizer
	node sizing.Node
	err  error
}

func (b *brokenSizer) Resolve(ctx context.Context, u string) (sizing.Node, error) {
	if b.err != nil {
		return sizing.Node{}, b.err
	}
	if b.node.URL != "" {
		return b.node, nil
	}
	return b.sizer.Resolve(ctx, u)
}

func TestPlanRejects(t *testing.T) {
	tn := loadTenant(t, "testdata/tenant.txt")
	errBoom := errors.New("boom")
	good := sizing.Request{PlanID: "p", SiteURL: site, Targets: abs("Docs/Medium")}
	tests := []struct {
		name    string
		req     func(*sizing.Request)
		sz      *brokenSizer
		wantErr error
		wantMsg string
	}{
		{name: "no plan id", req: func(r *sizing.Request) { r.PlanID = "" }, wantMsg: "no plan id"},
		{name: "no targets", req: func(r *sizing.Request) { r.Targets = nil }, wantMsg: "no targets"},
		{name: "target outside the site", req: func(r *sizing.Request) { r.Targets = []string{"https://contoso.example/sites/hr2/Docs"} }, wantMsg: "not in site"},
		{name: "relative target", req: func(r *sizing.Request) { r.Targets = []string{"/sites/hr/Docs"} }, wantMsg: "absolute"},
		{name: "planner-owned option", req: func(r *sizing.Request) { r.Options.IncludeDirectDescendantsOnly = true }, wantMsg: "set by the planner"},
		{name: "sizer error", sz: &brokenSizer{err: errBoom}, wantErr: errBoom},
		{name: "not a list or folder", sz: &brokenSizer{node: sizing.Node{URL: site + "/Docs/Medium", WebURL: site, ListID: "x", Kind: 0}}, wantMsg: "not a list or folder"},
		{name: "folder outside its list", sz: &brokenSizer{node: sizing.Node{URL: site + "/Docs/Medium", WebURL: site, ListID: "x", ListURL: site + "/Other", Kind: sizing.KindFolder}}, wantMsg: "not below its list"},
		{name: "web outside the site", sz: &brokenSizer{node: sizing.Node{URL: site + "/Docs/Medium", WebURL: "https://contoso.example/sites", ListID: "x", Kind: sizing.KindList}}, wantMsg: "outside site"},
	}
	p := newPlanner(t, testConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := good
			if tt.req != nil {
				tt.req(&req)
			}
			sz := tt.sz
			if sz == nil {
				sz = &brokenSizer{}
			}
			sz.t = tn
			_, err := p.Plan(context.Background(), req, sz)
			if err == nil {
				t.Fatal("Plan succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to say %q", err, tt.wantMsg)
			}
		})
	}
}

func TestContinueRejects(t *testing.T) {
	tn := loadTenant(t, "testdata/tenant.txt")
	p := newPlanner(t, testConfig())
	jobs, err := p.Plan(context.Background(), sizing.Request{PlanID: "p", SiteURL: site, Targets: abs("Docs/Big", "Docs/Medium")}, &sizer{t: tn})
	if err != nil {
		t.Fatal(err)
	}
	probe, single := jobs[0], jobs[1]
	tests := []struct {
		name string
		pr   sizing.ProbeResult
		want string
	}{
		{"not a probe", sizing.ProbeResult{Job: single}, "not a probe job"},
		{"grandchild", sizing.ProbeResult{Job: probe, Subfolders: []sizing.Node{{URL: site + "/Docs/Big/B3/B31", Items: 1}}}, "not a direct subfolder"},
		{"sibling", sizing.ProbeResult{Job: probe, Subfolders: []sizing.Node{{URL: site + "/Docs/Medium", Items: 1}}}, "not a direct subfolder"},
		{"other web", sizing.ProbeResult{Job: probe, Subfolders: []sizing.Node{{URL: site + "/Docs/Big/X", WebURL: site + "/eng", Items: 1}}}, "not under its web"},
		{"negative size", sizing.ProbeResult{Job: probe, Subfolders: []sizing.Node{{URL: site + "/Docs/Big/X", Items: -5}}}, "item count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Continue(context.Background(), tt.pr, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []sizing.Config{
		{Small: -1},
		{Small: 10, Large: 5},
		{MaxURLsPerJob: spo.MaxURLsPerJob + 1},
		{MaxURLsPerJob: -1},
		{MaxItemsPerBatch: -1},
		{IncrementalMaxItems: -1},
		{TokenMaxAge: -time.Hour},
	}
	for _, cfg := range tests {
		if _, err := sizing.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestContinueSizesUnknownSubfolders(t *testing.T) {
	tn := loadTenant(t, "testdata/tenant.txt")
	p := newPlanner(t, testConfig())
	sz := &sizer{t: tn}
	jobs, err := p.Plan(context.Background(), sizing.Request{PlanID: "p", SiteURL: site, Targets: abs("Docs/Big")}, sz)
	if err != nil {
		t.Fatal(err)
	}
	// The parser found no SMTotal* fields on the subfolders.
	pr := sizing.ProbeResult{Job: jobs[0], Subfolders: []sizing.Node{
		{URL: site + "/Docs/Big/B1", Items: sizing.UnknownItems},
		{URL: site + "/Docs/Big/B2", Items: sizing.UnknownItems},
	}}
	before := sz.resolves
	more, err := p.Continue(context.Background(), pr, sz)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"single Docs/Big/B1 items=61", "single Docs/Big/B2 items=6"}
	if got := describeAll(more); !slices.Equal(got, want) {
		t.Errorf("with a Sizer: %q, want %q", got, want)
	}
	if got := sz.resolves - before; got != 2 {
		t.Errorf("%d Resolve calls, want 2", got)
	}
	// Without a Sizer, an unknown subfolder is probed in turn.
	more, err = p.Continue(context.Background(), pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"probe Docs/Big/B1 items=-1", "probe Docs/Big/B2 items=-1"}
	if got := describeAll(more); !slices.Equal(got, want) {
		t.Errorf("without a Sizer: %q, want %q", got, want)
	}
	for _, j := range more {
		if j.ParentJobID != jobs[0].ID || j.PlanID != "p" {
			t.Errorf("%s: parent %q plan %q", describe(j), j.ParentJobID, j.PlanID)
		}
	}
}

// listingSizer is the tenant as a sizing.SubfolderSizer: one listing sizes a folder's direct
// subfolders, but omit's, and fails when fail is set.
type listingSizer struct {
	sizer
	omit     string
	fail     bool
	listings int
}

func (s *listingSizer) SizeSubfolders(_ context.Context, u string) (map[string]int64, error) {
	s.listings++
	if s.fail {
		return nil, errors.New("HTTP 429")
	}
	n, ok := s.t.nodes[strings.ToLower(u)]
	if !ok {
		return nil, fmt.Errorf("subfolders %s: not found", u)
	}
	out := map[string]int64{}
	for _, k := range n.kids {
		if !strings.EqualFold(k.url, s.omit) {
			out[sizing.ScopeKey(k.url)] = k.planNode().Items
		}
	}
	return out, nil
}

// TestContinueSizesSubfoldersFromOneListing: with a SubfolderSizer, a probe's subfolders of
// unknown size are sized by one listing of the probed folder, and resolved one by one only when
// the listing left them out or when one alone is unknown; the specs are those of resolving each.
func TestContinueSizesSubfoldersFromOneListing(t *testing.T) {
	tn := loadTenant(t, "testdata/tenant.txt")
	p := newPlanner(t, testConfig())
	jobs, err := p.Plan(context.Background(), sizing.Request{PlanID: "p", SiteURL: site, Targets: abs("Docs/Big")}, &sizer{t: tn})
	if err != nil {
		t.Fatal(err)
	}
	unknown := sizing.Node{URL: site + "/Docs/Big/B1", Items: sizing.UnknownItems}
	tests := []struct {
		name                   string
		subfolders             []sizing.Node
		omit                   string
		fail                   bool
		wantListings, wantRslv int
		want                   []string
	}{
		{name: "both unknown: one listing", subfolders: []sizing.Node{unknown, {URL: site + "/Docs/Big/B2", Items: sizing.UnknownItems}},
			wantListings: 1, want: []string{"single Docs/Big/B1 items=61", "single Docs/Big/B2 items=6"}},
		{name: "a subfolder the listing left out is resolved", subfolders: []sizing.Node{unknown, {URL: site + "/Docs/Big/B2", Items: sizing.UnknownItems}},
			omit: site + "/Docs/Big/B2", wantListings: 1, wantRslv: 1, want: []string{"single Docs/Big/B1 items=61", "single Docs/Big/B2 items=6"}},
		{name: "one unknown: resolved, not listed", subfolders: []sizing.Node{unknown, {URL: site + "/Docs/Big/B2", Items: tn.node(t, site+"/Docs/Big/B2").planNode().Items}},
			wantRslv: 1, want: []string{"single Docs/Big/B1 items=61", "single Docs/Big/B2 items=6"}},
		{name: "the listing fails: so does Continue", subfolders: []sizing.Node{unknown, {URL: site + "/Docs/Big/B2", Items: sizing.UnknownItems}},
			fail: true, wantListings: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sz := &listingSizer{sizer: sizer{t: tn}, omit: tt.omit, fail: tt.fail}
			more, err := p.Continue(context.Background(), sizing.ProbeResult{Job: jobs[0], Subfolders: tt.subfolders}, sz)
			switch {
			case tt.fail && err == nil:
				t.Fatalf("Continue = %q, want the listing's error", describeAll(more))
			case !tt.fail && err != nil:
				t.Fatal(err)
			}
			if got := describeAll(more); !slices.Equal(got, tt.want) {
				t.Errorf("specs %q, want %q", got, tt.want)
			}
			if sz.listings != tt.wantListings || sz.resolves != tt.wantRslv {
				t.Errorf("%d listings and %d Resolve calls, want %d and %d", sz.listings, sz.resolves, tt.wantListings, tt.wantRslv)
			}
		})
	}
}

func TestPlanHonoursCancellation(t *testing.T) {
	tn := loadTenant(t, "testdata/tenant.txt")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newPlanner(t, testConfig()).Plan(ctx, sizing.Request{PlanID: "p", SiteURL: site, Targets: abs("Docs")}, &sizer{t: tn})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
