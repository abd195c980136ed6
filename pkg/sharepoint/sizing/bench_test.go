package sizing_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
)

// benchTenant is one library of 100,100 folders: 10 top folders of 10 subfolders of 1,000
// leaves with 0 to 199 files each. With Small=100 and Large=10,000 the root, top folders and
// subfolders are probed and the leaves batched.
func benchTenant() *tenant {
	r := rand.New(rand.NewPCG(1, 2))
	tn := newTenant()
	lib := tn.addList(site, "Big", 5)
	for i := range 10 {
		top := tn.addFolder(lib, fmt.Sprintf("t%d", i), 3)
		for j := range 10 {
			mid := tn.addFolder(top, fmt.Sprintf("m%d", j), 2)
			for k := range 1000 {
				tn.addFolder(mid, fmt.Sprintf("leaf%04d", k), r.Int64N(200))
			}
		}
	}
	tn.done()
	return tn
}

// planAll plans the tree to the end, answering probes from the tenant as the parser would.
func planAll(ctx context.Context, tb testing.TB, p *sizing.Planner, tn *tenant, req sizing.Request) int {
	sz := &sizer{t: tn}
	queue, err := p.Plan(ctx, req, sz)
	if err != nil {
		tb.Fatal(err)
	}
	jobs := 0
	for len(queue) > 0 {
		j := queue[0]
		queue = queue[1:]
		jobs++
		if !j.Probe {
			continue
		}
		n := tn.nodes[strings.ToLower(j.URLs[0])]
		pr := sizing.ProbeResult{Job: j, Subfolders: make([]sizing.Node, len(n.kids))}
		for i, k := range n.kids {
			pr.Subfolders[i] = sizing.Node{URL: k.url, Items: k.items}
		}
		more, err := p.Continue(ctx, pr, sz)
		if err != nil {
			tb.Fatal(err)
		}
		queue = append(queue, more...)
	}
	return jobs
}

func BenchmarkPlanTree(b *testing.B) {
	tn := benchTenant()
	req := sizing.Request{PlanID: "bench", SiteURL: site, Targets: []string{site + "/Big"}}
	for _, listing := range []bool{false, true} {
		b.Run(fmt.Sprintf("ListLargeFolders=%t", listing), func(b *testing.B) {
			p := newPlanner(b, sizing.Config{Small: 100, Large: 10_000, ListLargeFolders: listing})
			jobs := 0
			for b.Loop() {
				jobs = planAll(context.Background(), b, p, tn, req)
			}
			b.ReportMetric(float64(jobs), "jobs")
		})
	}
}

// BenchmarkPlanManyTargets plans 100,000 folder targets given one by one.
func BenchmarkPlanManyTargets(b *testing.B) {
	tn := benchTenant()
	var targets []string
	for u, n := range tn.nodes {
		if len(n.kids) == 0 && len(targets) < 100_000 {
			targets = append(targets, tn.nodes[u].url)
		}
	}
	req := sizing.Request{PlanID: "bench", SiteURL: site, Targets: targets}
	p := newPlanner(b, sizing.Config{Small: 100, Large: 10_000})
	jobs := 0
	for b.Loop() {
		jobs = planAll(context.Background(), b, p, tn, req)
	}
	b.ReportMetric(float64(jobs), "jobs")
}
