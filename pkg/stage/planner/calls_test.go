package planner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// planCalls are the REST requests one planning of the demo plans made, by kind.
type planCalls struct {
	listings, folders, items, other int // Folders listings, single-folder calls (C10, C12), ListItemAllFields, the rest
	refused                         int // expanded listings answered 400
}

func (c planCalls) total() int { return c.listings + c.folders + c.items + c.other + c.refused }

// refusingSim is the simulator behind a gate that, when refuse is set, answers a subfolder
// listing asking for StorageMetrics with SharePoint's 400 for a field it does not have (§5.4 of
// docs/amr-protocol.md), as a tenant without the expansion on collections would; it counts what
// passes.
type refusingSim struct {
	next   http.Handler
	refuse atomic.Bool
	mu     sync.Mutex
	calls  planCalls
}

func (g *refusingSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.ToLower(r.URL.Path)
	listing := strings.HasSuffix(path, "/folders")
	expanded := strings.Contains(strings.ToLower(r.URL.Query().Get("$expand")), "storagemetrics")
	g.mu.Lock()
	switch {
	case listing && expanded && g.refuse.Load():
		g.calls.refused++
	case listing:
		g.calls.listings++
	case strings.HasSuffix(path, "/listitemallfields"):
		g.calls.items++
	case strings.Contains(path, "getfolderbyserverrelative"):
		g.calls.folders++
	default:
		g.calls.other++
	}
	g.mu.Unlock()
	if listing && expanded && g.refuse.Load() {
		w.Header().Set("Content-Type", "application/json;odata=nometadata")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"odata.error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"The field or property 'StorageMetrics' does not exist."}}}`))
		return
	}
	g.next.ServeHTTP(w, r)
}

func (g *refusingSim) take() planCalls {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.calls
	g.calls = planCalls{}
	return c
}

// TestDemoPlansSizeSubfoldersInOneRequest: planning the demo plans to the end, each probe answered
// with its folder's subfolders of unknown size (what the parser gives by default: manifests carry
// no folder totals), sizes a probe's subfolders with one listing of their StorageMetrics instead
// of one request each. The specs are those of the per-folder sizing, which the planner falls back
// to on a tenant that refuses the expanded listing.
func TestDemoPlansSizeSubfoldersInOneRequest(t *testing.T) {
	t.Parallel()
	h := start(t, tenant.DefaultProfile(), Config{Planner: sizing.Config{Small: testenv.DemoSmall, Large: testenv.DemoLarge}})
	gate := &refusingSim{next: h.sim.Handler()}
	hs := httptest.NewServer(gate)
	t.Cleanup(hs.Close)
	origin := hs.URL
	p, err := sizing.New(h.cfg.Planner)
	if err != nil {
		t.Fatal(err)
	}

	// plan plans every demo plan and continues every probe, as the planner stage would.
	plan := func(t *testing.T) (specs []*amrpipev1.JobSpec, probes, targets int) {
		ctx := context.Background()
		for _, req := range testenv.DemoPlans(func(p string) string { return origin + p }) {
			sz, err := NewSizer(h.sp, req.GetSiteUrl())
			if err != nil {
				t.Fatal(err)
			}
			jobs, err := p.Plan(ctx, sizing.Request{PlanID: req.GetPlanId(), SiteURL: req.GetSiteUrl(), Targets: req.GetTargets(),
				Options: OptionsFromProto(req.GetOptions())}, sz)
			if err != nil {
				t.Fatal(err)
			}
			targets += len(req.GetTargets())
			for len(jobs) > 0 {
				j := jobs[0]
				jobs = jobs[1:]
				specs = append(specs, SpecToProto(j, hostOf(origin)))
				if !j.Probe {
					continue
				}
				probes++
				pr := sizing.ProbeResult{Job: j}
				for _, f := range h.subfolders(strings.TrimPrefix(j.URLs[0], origin)) {
					pr.Subfolders = append(pr.Subfolders, sizing.Node{URL: origin + f.ServerRelativeURL, Items: sizing.UnknownItems})
				}
				next, err := p.Continue(ctx, pr, sz)
				if err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, next...)
			}
		}
		return specs, probes, targets
	}

	listed, probes, targets := plan(t)
	withListing := gate.take()
	gate.refuse.Store(true)
	perFolder, _, _ := plan(t)
	refused := gate.take()
	t.Logf("demo plans: %d probes continued, %d targets; requests with the listing's StorageMetrics %+v = %d, refused %+v = %d",
		probes, targets, withListing, withListing.total(), refused, refused.total())

	sameSpecs(t, listed, perFolder)
	if probes == 0 {
		t.Fatal("the demo plans continued no probe")
	}
	// One listing per probe, at most one folder request per target; webs and lists besides.
	if withListing.listings > probes || withListing.folders+withListing.items > targets {
		t.Errorf("with the listing's StorageMetrics: %+v for %d probes and %d targets", withListing, probes, targets)
	}
	// Refused once, then listed plainly (the client remembers) and sized one folder at a time.
	if refused.refused != 1 || refused.total() <= withListing.total() {
		t.Errorf("refusing tenant: %+v, want one refusal and more requests than %d", refused, withListing.total())
	}
}
