package planner

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// want is pkg/planner's own output for req, sized through a Sizer on the same simulator.
func (h *harness) want(req *amrpipev1.PlanRequest, tokens map[string]sizing.StoredToken, rejected map[string]bool) []*amrpipev1.JobSpec {
	h.t.Helper()
	sz, err := NewSizer(h.sp, req.GetSiteUrl())
	if err != nil {
		h.t.Fatal(err)
	}
	p, err := sizing.New(h.cfg.Planner)
	if err != nil {
		h.t.Fatal(err)
	}
	jobs, err := p.Plan(context.Background(), sizing.Request{
		PlanID: req.GetPlanId(), SiteURL: req.GetSiteUrl(), Targets: req.GetTargets(), Options: OptionsFromProto(req.GetOptions()),
		Incremental: req.GetIncremental(), ChangeTokens: tokens, TokenRejected: rejected,
	}, sz)
	if err != nil {
		h.t.Fatal(err)
	}
	return toProto(jobs, hostOf(req.GetSiteUrl()))
}

func sameSpecs(t *testing.T, got, want []*amrpipev1.JobSpec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("published %d specs, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := withoutReadTimes(t, got[i]), withoutReadTimes(t, want[i])
		if !proto.Equal(g, w) {
			t.Fatalf("spec %d:\n got %s\nwant %s", i, prototext.Format(got[i]), prototext.Format(want[i]))
		}
	}
}

// withoutReadTimes is a spec without the read times of its list tokens (they differ between two
// plannings), which must be set.
func withoutReadTimes(t *testing.T, s *amrpipev1.JobSpec) *amrpipev1.JobSpec {
	t.Helper()
	s = proto.Clone(s).(*amrpipev1.JobSpec)
	for _, lt := range s.GetListTokens() {
		if lt.GetRead() == nil {
			t.Errorf("spec %s: token of list %s without its read time", s.GetSpecId(), lt.GetListId())
		}
		lt.Read = nil
	}
	return s
}

// subfolders are the direct subfolders of a server-relative folder, as the tenant has them.
func (h *harness) subfolders(path string) []tenant.Folder {
	h.t.Helper()
	subs, err := h.tenant.Subfolders(path)
	if err != nil {
		h.t.Fatal(err)
	}
	return subs
}

func TestPlanPublishesTheSpecsOfThePlanner(t *testing.T) {
	tests := []struct {
		name    string
		profile tenant.Profile
		site    string // server-relative; the profile's first when empty
		limits  sizing.Config
		targets func(h *harness) []string
		opts    *amrpipev1.ReadOptions
		kinds   []string // kinds that must be among the specs
	}{
		{
			name: "small site: batches, single jobs, a probe, security", profile: tenant.SmallProfile(),
			limits: sizing.Config{Small: 500, Large: 1000},
			targets: func(h *harness) []string {
				docs := h.list("Documents").RootFolderURL
				var teams []string
				for _, f := range h.subfolders(docs)[:2] {
					teams = append(teams, h.url(f.ServerRelativeURL))
				}
				notes := h.webList(h.siteURL+"/team", "Notes")
				return append(teams, h.url(h.list("Tasks").RootFolderURL), h.url(docs+"/Big"), h.url(notes.RootFolderURL))
			},
			opts:  &amrpipev1.ReadOptions{IncludeSecurity: true, IncludeVersions: true},
			kinds: []string{KindSecurity, KindMulti, KindSingle, KindProbe},
		},
		{
			name: "default site with lowered thresholds", profile: tenant.DefaultProfile(), site: "/sites/engineering",
			limits: sizing.Config{Small: 13000, Large: 30000},
			targets: func(h *harness) []string {
				docs := h.list("Documents").RootFolderURL
				design := h.webList(h.siteURL+"/platform", "Design Docs")
				return []string{h.url(docs + "/Specs"), h.url(docs + "/Releases"), h.url(h.list("Issues").RootFolderURL), h.url(design.RootFolderURL)}
			},
			kinds: []string{KindSingle, KindProbe},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, tt.profile, Config{Planner: tt.limits})
			if tt.site != "" {
				h.siteURL = h.url(tt.site)
			}
			req := &amrpipev1.PlanRequest{PlanId: "p1", SiteUrl: h.siteURL, Targets: tt.targets(h), Options: tt.opts}
			h.publish(topology.SubjectPlanSubmit, req, "plan/p1")
			h.settle()
			got := h.specs("p1")
			sameSpecs(t, got, h.want(req, nil, nil))

			kinds := map[string]int{}
			for _, s := range got {
				kinds[SpecKind(s)]++
			}
			for _, k := range tt.kinds {
				if kinds[k] == 0 {
					t.Errorf("no %s spec among %v", k, kinds)
				}
				if n := testenv.Counter(t, h.rt, "amr_planner_specs_published_total", map[string]string{"kind": k}); n != float64(kinds[k]) {
					t.Errorf("metric counts %v %s specs, published %d", n, k, kinds[k])
				}
			}
			for _, target := range req.GetTargets() {
				if !covered(target, got) {
					t.Errorf("target %s is read by no job", target)
				}
			}
			if dl := h.env.DeadLetters(t, topology.StagePlanner); len(dl) != 0 {
				t.Fatalf("dead letters: %v", dl[0].GetReason())
			}
		})
	}
}

// covered reports whether a content job reads target (or a folder holding it).
func covered(target string, specs []*amrpipev1.JobSpec) bool {
	for _, s := range specs {
		if s.GetEmit() == amrpipev1.Emit_EMIT_SECURITY_ONLY {
			continue
		}
		for _, u := range s.GetUrls() {
			if pathUnder(strings.ToLower(target), strings.ToLower(u)) {
				return true
			}
		}
	}
	return false
}

func TestRedeliveredPlanPublishesNothingNew(t *testing.T) {
	t.Parallel()
	h := start(t, tenant.SmallProfile(), Config{Planner: sizing.Config{Small: 100, Large: 1000}})
	docs := h.list("Documents").RootFolderURL
	req := &amrpipev1.PlanRequest{PlanId: "again", SiteUrl: h.siteURL, Targets: []string{h.url(docs), h.url(h.list("Tasks").RootFolderURL)}}
	h.publish(topology.SubjectPlanSubmit, req, "plan/again")
	h.settle()
	first := h.specs("again")
	if len(first) == 0 {
		t.Fatal("no specs")
	}
	// The same plan again, past the stream's duplicate window (another message id).
	h.publish(topology.SubjectPlanSubmit, req, "plan/again#2")
	h.settle()
	sameSpecs(t, h.specs("again"), first)
	if n := testenv.Counter(t, h.rt, "amr_planner_plans_total", map[string]string{"outcome": "replayed"}); n != 1 {
		t.Fatalf("replayed plans = %v, want 1", n)
	}
}

func TestRedeliveryRepublishesTheFirstPlanning(t *testing.T) {
	t.Parallel()
	h := start(t, tenant.SmallProfile(), Config{Planner: sizing.Config{Small: 100, Large: 1000}})
	req := &amrpipev1.PlanRequest{PlanId: "crashed", SiteUrl: h.siteURL,
		Targets: []string{h.url(h.list("Documents").RootFolderURL), h.url(h.list("Tasks").RootFolderURL)}}
	// An earlier delivery planned (when the tenant looked different: one job less) and died
	// before publishing. The redelivery must publish that planning, not a new one.
	earlier := h.want(req, nil, nil)[1:]
	store, err := jobstore.Open(context.Background(), h.env.JS, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.SavePlanning(context.Background(), jobstore.PlanIndex("crashed"), "crashed", earlier); err != nil {
		t.Fatal(err)
	}
	h.publish(topology.SubjectPlanSubmit, req, "plan/crashed")
	h.settle()
	sameSpecs(t, h.specs("crashed"), earlier)
}

func TestProbeResultContinuesThePlan(t *testing.T) {
	t.Parallel()
	h := start(t, tenant.SmallProfile(), Config{Planner: sizing.Config{Small: 100, Large: 1000}})
	docs := h.list("Documents").RootFolderURL
	req := &amrpipev1.PlanRequest{PlanId: "deep", SiteUrl: h.siteURL, Targets: []string{h.url(docs)}}
	h.publish(topology.SubjectPlanSubmit, req, "plan/deep")
	h.settle()
	planned := h.specs("deep")
	if len(planned) != 1 || !planned[0].GetProbe() {
		t.Fatalf("want one probe spec for a library over -large, got %v", planned)
	}
	probe := planned[0]

	// The parser's result: the library's direct subfolders with their file counts (SMTotalFileCount;
	// SharePoint counts no folders below a folder, so Folders is 0), one of them without totals
	// (the planner sizes it through SharePoint, by StorageMetrics).
	pr := &amrpipev1.ProbeResult{Spec: probe, JobId: "6a0f8a52-9b0e-4b8e-9d51-0c1a2b3c4d5e"}
	var nodes []sizing.Node
	for i, f := range h.subfolders(docs) {
		fs := &amrpipev1.FolderSize{Url: h.url(f.ServerRelativeURL), Files: f.SMTotalFileCount}
		if i == 0 {
			fs.Files, fs.Folders, fs.TotalsUnknown = -1, -1, true
		}
		pr.Subfolders = append(pr.Subfolders, fs)
		nodes = append(nodes, sizing.Node{URL: fs.GetUrl(), Items: f.SMTotalFileCount})
	}
	h.publish(topology.SubjectPlanProbe, pr, "probe/"+probe.GetSpecId())
	h.settle()

	p, err := sizing.New(h.cfg.Planner)
	if err != nil {
		t.Fatal(err)
	}
	next, err := p.Continue(context.Background(), sizing.ProbeResult{Job: SpecFromProto(probe), Subfolders: nodes}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := h.specs("deep")
	sameSpecs(t, got, append([]*amrpipev1.JobSpec{probe}, toProto(next, probe.GetTenant())...))
	for _, s := range got[1:] {
		if s.GetParentSpecId() != probe.GetSpecId() {
			t.Errorf("spec %s has parent %q, want the probe %s", s.GetSpecId(), s.GetParentSpecId(), probe.GetSpecId())
		}
	}

	h.publish(topology.SubjectPlanProbe, pr, "probe/"+probe.GetSpecId()+"#2")
	h.settle()
	if n := len(h.specs("deep")); n != len(got) {
		t.Fatalf("a redelivered probe result published %d more specs", n-len(got))
	}
}

func TestInvalidInputIsDeadLetteredWithAReason(t *testing.T) {
	t.Parallel()
	h := start(t, tenant.SmallProfile(), Config{})
	docs := h.url(h.list("Documents").RootFolderURL)
	tests := []struct {
		name       string
		req        *amrpipev1.PlanRequest
		raw        []byte // sent instead of req
		wantReason string
	}{
		{name: "relative site URL", req: &amrpipev1.PlanRequest{SiteUrl: "/sites/small", Targets: []string{docs}}, wantReason: "not an absolute http(s) URL"},
		{name: "no targets", req: &amrpipev1.PlanRequest{SiteUrl: h.siteURL}, wantReason: "no targets"},
		{name: "target outside the site", req: &amrpipev1.PlanRequest{SiteUrl: h.siteURL, Targets: []string{h.url("/sites/other/Docs")}},
			wantReason: "is not under site"},
		{name: "target that is not in a list", req: &amrpipev1.PlanRequest{SiteUrl: h.siteURL, Targets: []string{h.siteURL}},
			wantReason: "in no list or library"},
		{name: "folder that does not exist", req: &amrpipev1.PlanRequest{SiteUrl: h.siteURL, Targets: []string{docs + "/No such folder"}},
			wantReason: "HTTP 404"},
		{name: "shallow read asked by the plan", req: &amrpipev1.PlanRequest{SiteUrl: h.siteURL, Targets: []string{docs},
			Options: &amrpipev1.ReadOptions{IncludeDirectDescendantsOnly: true}}, wantReason: "include_direct_descendants_only"},
		{name: "undecodable payload", raw: []byte{0xff, 0xff, 0xff}, wantReason: "undecodable"},
	}
	for i, tt := range tests {
		id := fmt.Sprintf("bad%d", i)
		if tt.raw != nil {
			msg := nats.NewMsg(topology.SubjectPlanSubmit)
			msg.Data = tt.raw
			msg.Header.Set("Nats-Msg-Id", "plan/"+id)
			msg.Header.Set(bus.HeaderType, "amrpipe.v1.PlanRequest")
			if _, err := h.env.JS.PublishMsg(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			continue
		}
		tt.req.PlanId = id
		h.publish(topology.SubjectPlanSubmit, tt.req, "plan/"+id)
	}
	h.settle()
	store, err := jobstore.Open(context.Background(), h.env.JS, nil)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*amrpipev1.DeadLetter{}
	for _, dl := range h.env.DeadLetters(t, topology.StagePlanner) {
		byID[dl.GetMsgId()] = dl
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dl := byID[fmt.Sprintf("plan/bad%d", i)]
			if dl == nil {
				t.Fatal("not dead-lettered")
			}
			if !strings.Contains(dl.GetReason(), tt.wantReason) {
				t.Fatalf("reason %q does not say %q", dl.GetReason(), tt.wantReason)
			}
			if n := len(h.specs(fmt.Sprintf("bad%d", i))); n != 0 {
				t.Fatalf("%d specs published for an invalid plan", n)
			}
			if tt.raw != nil {
				return // no plan id to report on
			}
			// The plan reports itself failed, with the reason (amrctl plan status).
			st, err := store.PlanStatus(context.Background(), fmt.Sprintf("bad%d", i))
			if err != nil || !st.GetFailed() || len(st.GetPlanningFailed()) != 1 || !strings.Contains(st.GetPlanningFailed()[0], tt.wantReason) {
				t.Fatalf("plan status %v, %v; want the planning failed with %q", st, err, tt.wantReason)
			}
		})
	}
}

func TestThrottledFolderCallsDelayWithoutDeadLetter(t *testing.T) {
	t.Parallel()
	// Three 429s with Retry-After 1 s on the folder calls, and a handler that waits at most
	// 200 ms: the planner hands the plan back (Nak with delay) until the host may be called.
	h := startWaiting(t, tenant.SmallProfile(), Config{Planner: sizing.Config{Small: 100, Large: 1000}}, 200*time.Millisecond,
		server.Rule{Method: "GetFolderByServerRelativePath", Status: 429, RetryAfter: "1", Times: 3})
	docs := h.list("Documents").RootFolderURL
	req := &amrpipev1.PlanRequest{PlanId: "slow", SiteUrl: h.siteURL, Targets: []string{h.url(docs + "/Big"), h.url(docs + "/Empty")}}
	h.publish(topology.SubjectPlanSubmit, req, "plan/slow")
	h.settle()
	if dl := h.env.DeadLetters(t, topology.StagePlanner); len(dl) != 0 {
		t.Fatalf("throttling dead-lettered the plan: %s", dl[0].GetReason())
	}
	sameSpecs(t, h.specs("slow"), h.want(req, nil, nil))
	if n := testenv.Counter(t, h.rt, "amr_stage_messages_total", map[string]string{"stage": topology.StagePlanner, "outcome": "throttled"}); n < 1 {
		t.Fatalf("the plan was never handed back throttled (%v)", n)
	}
}

func TestIncrementalPlanUsesStoredChangeTokens(t *testing.T) {
	tests := []struct {
		name            string
		age             time.Duration
		rejected        bool
		wantIncremental bool
	}{
		{name: "fresh token", age: time.Hour, wantIncremental: true},
		{name: "token older than 60 days", age: 61 * 24 * time.Hour},
		{name: "token SharePoint rejected", age: time.Hour, rejected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, tenant.SmallProfile(), Config{})
			tasks := h.list("Tasks")
			docs := h.list("Documents")
			store, err := jobstore.Open(context.Background(), h.env.JS, nil)
			if err != nil {
				t.Fatal(err)
			}
			issued := time.Now().Add(-tt.age)
			// SharePoint writes list ids in braces and upper case at times; the store does not care.
			if err := store.PutToken(context.Background(), &amrpipev1.StoredToken{
				ListId: "{" + strings.ToUpper(tasks.ID) + "}", Token: "1;3;" + tasks.ID + ";638000000000000000;42", Issued: timestamppb.New(issued)}); err != nil {
				t.Fatal(err)
			}
			req := &amrpipev1.PlanRequest{PlanId: "inc", SiteUrl: h.siteURL, Incremental: true,
				Targets: []string{h.url(tasks.RootFolderURL), h.url(docs.RootFolderURL)}}
			rejected := map[string]bool{}
			if tt.rejected {
				req.TokenRejectedLists = []string{tasks.ID}
				rejected[tasks.ID] = true
			}
			h.publish(topology.SubjectPlanSubmit, req, "plan/inc")
			h.settle()
			got := h.specs("inc")
			sameSpecs(t, got, h.want(req, map[string]sizing.StoredToken{tasks.ID: {Token: "1;3;" + tasks.ID + ";638000000000000000;42", IssuedAt: issued}}, rejected))
			var incremental bool
			for _, s := range got {
				if s.GetStartChangeToken() != "" {
					incremental = true
					if s.GetTokenListId() != tasks.ID || SpecKind(s) != KindIncremental {
						t.Errorf("incremental spec %v", s)
					}
				}
			}
			if incremental != tt.wantIncremental {
				t.Fatalf("incremental job: %t, want %t", incremental, tt.wantIncremental)
			}
		})
	}
}

// TestBatchedListsCarryTheirChangeTokens: small lists batched into one multi-URL job (as a full
// pass plans them) carry each list's change token as SharePoint gave it while the plan was sized,
// so each list gets a token when the job completes; a folder target carries its list's token for
// itself (scoped to the folder).
func TestBatchedListsCarryTheirChangeTokens(t *testing.T) {
	t.Parallel()
	h := start(t, tenant.SmallProfile(), Config{Planner: sizing.Config{Small: 5000, Large: 10000}})
	tasks, docs, notes := h.list("Tasks"), h.list("Documents"), h.webList(h.siteURL+"/team", "Notes")
	drafts := h.url(notes.RootFolderURL + "/Drafts")
	before := time.Now()
	req := &amrpipev1.PlanRequest{PlanId: "lists", SiteUrl: h.siteURL,
		Targets: []string{h.url(tasks.RootFolderURL), h.url(docs.RootFolderURL), drafts}}
	h.publish(topology.SubjectPlanSubmit, req, "plan/lists")
	h.settle()
	got := h.specs("lists")
	sameSpecs(t, got, h.want(req, nil, nil))
	var multi *amrpipev1.JobSpec
	for _, s := range got {
		lt := s.GetListTokens()
		switch {
		case s.GetMulti():
			multi = s
		case len(s.GetUrls()) == 1 && s.GetUrls()[0] == drafts:
			if len(lt) != 1 || lt[0].GetListId() != notes.ID || lt[0].GetToken() != notes.ChangeToken || lt[0].GetScope() != drafts {
				t.Errorf("folder target's spec carries tokens %v, want its list's scoped to it", lt)
			}
		case len(lt) > 0:
			t.Errorf("spec %s on %v carries list tokens %v", s.GetSpecId(), s.GetUrls(), lt)
		}
	}
	if multi == nil || len(multi.GetUrls()) != 2 {
		t.Fatalf("specs %v: want the two lists in one multi-URL job", got)
	}
	want := map[string]string{tasks.ID: tasks.ChangeToken, docs.ID: docs.ChangeToken}
	for _, lt := range multi.GetListTokens() {
		if lt.GetToken() == "" || lt.GetToken() != want[lt.GetListId()] || lt.GetRead().AsTime().Before(before) {
			t.Errorf("list token %v, want %q read after %v", lt, want[lt.GetListId()], before)
		}
		delete(want, lt.GetListId())
	}
	if len(want) != 0 {
		t.Errorf("no token for lists %v", want)
	}
}

func TestSpecRoundTrip(t *testing.T) {
	j := sizing.JobSpec{
		ID: "0123456789abcdef0123456789abcdef", PlanID: "p", SiteURL: "https://c.sharepoint.com/sites/a", WebURL: "https://c.sharepoint.com/sites/a",
		URLs: []string{"https://c.sharepoint.com/sites/a/L"}, Options: sizing.JobSpec{}.Options, Emit: sizing.EmitProbe, Probe: true,
		ParentJobID: "p0", ListIDs: []string{"l1"}, TokenListID: "l1", Scope: []string{"https://c.sharepoint.com/sites/a/L/f"}, Items: -1,
		ListTokens: []sizing.ListToken{{ListID: "l1", Token: "1;3;l1;1;2", Read: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}},
	}
	j.Options.IncludeVersions, j.Options.IncludeDirectDescendantsOnly, j.Options.StartChangeToken = true, true, "tok"
	back := SpecFromProto(SpecToProto(j, "c.sharepoint.com"))
	if !reflect.DeepEqual(back, j) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, j)
	}
}

func TestSizerParsesSharePointPaths(t *testing.T) {
	sz, err := NewSizer(nil, "https://Contoso.sharepoint.com/sites/hr")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url, wantURL, wantPath, wantErr string
	}{
		{url: "https://contoso.sharepoint.com/sites/hr/Shared Documents/", wantURL: "https://Contoso.sharepoint.com/sites/hr/Shared Documents",
			wantPath: "/sites/hr/Shared Documents"},
		{url: "https://contoso.sharepoint.com/sites/hr/Shared%20Documents/C%23", wantURL: "https://Contoso.sharepoint.com/sites/hr/Shared Documents/C#",
			wantPath: "/sites/hr/Shared Documents/C#"},
		{url: "https://contoso.sharepoint.com/sites/HR/Docs/C# notes", wantURL: "https://Contoso.sharepoint.com/sites/HR/Docs/C# notes",
			wantPath: "/sites/HR/Docs/C# notes"},
		{url: "https://contoso.sharepoint.com/sites/hr/Docs/100% done", wantURL: "https://Contoso.sharepoint.com/sites/hr/Docs/100% done",
			wantPath: "/sites/hr/Docs/100% done"},
		{url: "https://fabrikam.sharepoint.com/sites/hr/Docs", wantErr: "not on the site's host"},
		{url: "https://contoso.sharepoint.com/sites/hrx/Docs", wantErr: "not in site"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			loc, err := sz.parse(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse = %+v, %v; want an error saying %q", loc, err, tt.wantErr)
				}
				return
			}
			if err != nil || loc.url != tt.wantURL || loc.path != tt.wantPath {
				t.Fatalf("parse = %q %q, %v; want %q %q", loc.url, loc.path, err, tt.wantURL, tt.wantPath)
			}
		})
	}
}
