package sizing_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// randomCase builds a random tenant (several webs, nested subwebs, libraries with random
// fan-out and sizes from 0 to several times Large, some totals unknown), random thresholds and a
// random plan over it.
func randomCase(seed uint64) (*tenant, sizing.Config, sizing.Request) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	small := 1 + r.Int64N(30)
	large := small + r.Int64N(5*small+1)
	cfg := sizing.Config{
		Small: small, Large: large,
		MaxURLsPerJob:    1 + r.IntN(8),
		ListLargeFolders: r.IntN(3) == 0,
		Now:              func() time.Time { return now },
	}
	if r.IntN(2) == 0 {
		cfg.MaxItemsPerBatch = 1 + r.Int64N(2*large)
	}
	if r.IntN(3) == 0 {
		cfg.IncrementalMaxItems = r.Int64N(4 * large)
	}

	site := fmt.Sprintf("https://t%d.example/sites/s%d", seed%3, seed)
	webs := []string{site, site + "/w1", site + "/w1/w2"}[:1+r.IntN(3)]
	tn := newTenant()
	var all, lists []*tnode
	budget := 150 + r.IntN(250) // nodes per tenant
	var grow func(parent *tnode, depth int)
	grow = func(parent *tnode, depth int) {
		fan := r.IntN(5)
		for i := 0; i < fan && depth < 5 && budget > 0; i++ {
			budget--
			k := tn.addFolder(parent, fmt.Sprintf("f%d", i), randomFiles(r, small, large))
			k.unknown = r.IntN(10) == 0
			all = append(all, k)
			grow(k, depth+1)
		}
	}
	for _, w := range webs {
		for i := range 1 + r.IntN(4) {
			l := tn.addList(w, fmt.Sprintf("Lib%d", i), randomFiles(r, small, large))
			l.unknown = r.IntN(8) == 0
			lists = append(lists, l)
			if r.IntN(3) > 0 { // else a library without folders
				grow(l, 0)
			}
		}
	}
	tn.done()

	req := sizing.Request{
		PlanID: fmt.Sprintf("plan-%d", seed), SiteURL: site,
		Options: spo.ReadOptions{
			IncludeVersions: r.IntN(2) == 0, IncludePermission: r.IntN(2) == 0,
			IncludeExtendedMetadata: r.IntN(2) == 0, IncludeSecurity: r.IntN(2) == 0,
		},
		Incremental:   r.IntN(2) == 0,
		ChangeTokens:  map[string]sizing.StoredToken{},
		TokenRejected: map[string]bool{},
	}
	for i := range 1 + r.IntN(8) {
		n := lists[r.IntN(len(lists))]
		if len(all) > 0 && r.IntN(2) == 0 {
			n = all[r.IntN(len(all))]
		}
		req.Targets = append(req.Targets, n.url)
		switch {
		case i%3 == 0 && len(n.kids) > 0: // an overlapping target
			req.Targets = append(req.Targets, n.kids[r.IntN(len(n.kids))].url)
		case i%3 == 1: // the same target spelt differently
			req.Targets = append(req.Targets, strings.ToUpper(n.url[:8])+n.url[8:]+"/")
		}
	}
	for _, l := range tn.lists {
		tok := sizing.StoredToken{Token: "1;3;" + l.listID + ";1;1", IssuedAt: now.Add(-time.Duration(r.IntN(70*24)) * time.Hour)}
		switch r.IntN(4) {
		case 0: // no token
		case 1:
			req.TokenRejected[l.listID] = true
			req.ChangeTokens[l.listID] = tok
		default:
			req.ChangeTokens[l.listID] = tok
		}
	}
	return tn, cfg, req
}

// randomFiles picks a folder's direct file count: mostly small, sometimes medium or several
// times Large.
func randomFiles(r *rand.Rand, small, large int64) int64 {
	switch x := r.IntN(20); {
	case x < 12:
		return r.Int64N(small)
	case x < 17:
		return r.Int64N(large + 1)
	default:
		return r.Int64N(3*large + 1)
	}
}

func TestPlanProperties(t *testing.T) {
	seeds := uint64(600)
	if testing.Short() {
		seeds = 100
	}
	for seed := range seeds {
		tn, cfg, req := randomCase(seed)
		p := newPlanner(t, cfg)
		e, err := run(context.Background(), tn, p, req)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, msg := range checkExactlyOnce(tn, e, req.Targets) {
			t.Errorf("seed %d: %s", seed, msg)
		}
		for _, msg := range checkJobs(tn, cfg, req, e) {
			t.Errorf("seed %d: %s", seed, msg)
		}
		// A redelivered plan, its targets in another order, yields the same jobs.
		shuffled := req
		shuffled.Targets = append([]string(nil), req.Targets...)
		rand.New(rand.NewPCG(seed, 1)).Shuffle(len(shuffled.Targets), func(i, j int) {
			shuffled.Targets[i], shuffled.Targets[j] = shuffled.Targets[j], shuffled.Targets[i]
		})
		first, err := p.Plan(context.Background(), req, &sizer{t: tn})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		again, err := p.Plan(context.Background(), shuffled, &sizer{t: tn})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !reflect.DeepEqual(first, again) {
			t.Errorf("seed %d: replanning with shuffled targets changed the jobs:\n%q\n%q", seed, describeAll(first), describeAll(again))
		}
		if t.Failed() {
			t.Logf("seed %d jobs: %q", seed, describeAll(e.jobs))
			return
		}
	}
}

// checkJobs checks every job of a run against the rules, beyond coverage.
func checkJobs(tn *tenant, cfg sizing.Config, req sizing.Request, e *emission) []string {
	var bad []string
	fail := func(j sizing.JobSpec, format string, args ...any) {
		bad = append(bad, describe(j)+": "+fmt.Sprintf(format, args...))
	}
	maxBatch := cfg.MaxItemsPerBatch
	if maxBatch == 0 {
		maxBatch = cfg.Large
	}
	ids := map[string]bool{}
	security := 0
	listRead := map[string]bool{} // lists some earlier job read
	for _, j := range e.jobs {
		if j.TokenListID != "" && listRead[j.TokenListID] {
			fail(j, "token job created after another job read list %s", j.TokenListID)
		}
		for _, l := range j.ListIDs {
			listRead[l] = true
		}
		if ids[j.ID] {
			fail(j, "duplicate id %s", j.ID)
		}
		ids[j.ID] = true
		if len(j.URLs) == 0 || len(j.URLs) > cfg.MaxURLsPerJob || j.Multi != (len(j.URLs) > 1) {
			fail(j, "%d URLs, Multi %t, cap %d", len(j.URLs), j.Multi, cfg.MaxURLsPerJob)
		}
		o := j.Options
		if j.Emit == sizing.EmitSecurityOnly {
			security++
			if !o.IncludeSecurity || !o.IncludeDirectDescendantsOnly || !j.EmitPrincipals || len(j.URLs) != 1 {
				fail(j, "security job options %+v", o)
			}
			continue
		}
		if o.IncludeSecurity || o.IncludeVersions != req.Options.IncludeVersions ||
			o.IncludePermission != req.Options.IncludePermission || o.IncludeExtendedMetadata != req.Options.IncludeExtendedMetadata ||
			o.IncludeDirectDescendantsOnly != (j.Emit == sizing.EmitProbe) {
			fail(j, "content job options %+v", o)
		}
		if j.EmitPrincipals == req.Options.IncludeSecurity {
			fail(j, "EmitPrincipals %t with IncludeSecurity %t", j.EmitPrincipals, req.Options.IncludeSecurity)
		}
		nodes := make([]*tnode, len(j.URLs))
		var sum int64
		for i, u := range j.URLs {
			nodes[i] = tn.nodes[strings.ToLower(u)]
			sum += nodes[i].items + 1
		}
		n := nodes[0]
		switch {
		case o.StartChangeToken != "":
			tok := req.ChangeTokens[n.listID]
			if !req.Incremental || req.TokenRejected[n.listID] || tok.Token != o.StartChangeToken ||
				now.Sub(tok.IssuedAt) >= 60*24*time.Hour || n.unknown && cfg.IncrementalMaxItems > 0 ||
				cfg.IncrementalMaxItems > 0 && n.items > cfg.IncrementalMaxItems || j.TokenListID != n.listID {
				fail(j, "uses a token it should not")
			}
		case j.Emit == sizing.EmitProbe:
			if !n.unknown && n.items <= cfg.Large || j.Probe == cfg.ListLargeFolders {
				fail(j, "shallow job on %d items (Large %d), Probe %t", n.items, cfg.Large, j.Probe)
			}
		case j.Multi:
			for _, m := range nodes {
				if m.unknown || m.items >= cfg.Small || m.kind == sizing.KindList && req.Incremental {
					fail(j, "batched %s with %d items (Small %d)", m.url, m.items, cfg.Small)
				}
			}
			if sum > maxBatch {
				fail(j, "batch of %d items, cap %d", sum, maxBatch)
			}
		default:
			if n.unknown || n.items > cfg.Large {
				fail(j, "single job on %d items (Large %d)", n.items, cfg.Large)
			}
		}
		if (j.TokenListID != "") != (len(nodes) == 1 && n.kind == sizing.KindList) {
			fail(j, "TokenListID %q", j.TokenListID)
		}
	}
	if want := map[bool]int{true: 1, false: 0}[req.Options.IncludeSecurity]; security != want {
		bad = append(bad, fmt.Sprintf("%d security jobs, want %d", security, want))
	}
	if req.Options.IncludeSecurity && e.principals != 1 {
		bad = append(bad, fmt.Sprintf("%d jobs publish principals, want 1", e.principals))
	}
	return bad
}
