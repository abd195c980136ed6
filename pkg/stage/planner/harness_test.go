package planner

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

const (
	testToken = "planner-test-token-5b1e"
	userAgent = "ISV|amrpipe|planner-test/1.0"
)

// harness is one planner stage against an embedded JetStream and the simulator.
type harness struct {
	t       *testing.T
	env     *testenv.JetStream
	tenant  *tenant.Tenant
	sim     *server.Server
	siteURL string // the profile's first site
	sp      *stage.SharePoint
	rt      *svc.Runtime
	svc     *Stage
	cfg     Config
}

// start runs the simulator (Rate 0) with faults and the planner stage with cfg's thresholds.
func start(t *testing.T, p tenant.Profile, cfg Config, faults ...server.Rule) *harness {
	t.Helper()
	return startWaiting(t, p, cfg, 0, faults...)
}

// startWaiting is start with a -max-throttle-wait (0: the default).
func startWaiting(t *testing.T, p tenant.Profile, cfg Config, maxWait time.Duration, faults ...server.Rule) *harness {
	t.Helper()
	h := &harness{t: t, env: testenv.StartJetStream(t)}
	var err error
	if h.tenant, err = tenant.New(p); err != nil {
		t.Fatal(err)
	}
	sim, err := server.New(server.Config{Tenant: h.tenant, Token: testToken, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	h.sim = sim
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	})
	h.siteURL = hs.URL + p.Sites[0].URL

	ctx, cancel := context.WithCancel(context.Background())
	h.cfg = cfg
	deps := h.env.Deps(t, Def(), stage.Config{SharePoint: spo.Config{UserAgent: userAgent, Token: testToken, Timeout: 30 * time.Second}, MaxThrottleWait: maxWait}, nil, nil)
	h.sp, h.rt = deps.SharePoint, deps.Runtime
	if h.svc, err = New(cfg, deps); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// url is an absolute URL of a server-relative path of the simulator.
func (h *harness) url(path string) string {
	return h.siteURL[:strings.Index(h.siteURL[len("http://"):], "/")+len("http://")] + path
}

// list finds a list of the site by title.
func (h *harness) list(title string) spo.List {
	h.t.Helper()
	return h.webList(h.siteURL, title)
}

func (h *harness) webList(web, title string) spo.List {
	h.t.Helper()
	lists, err := h.sp.Client.Lists(context.Background(), web)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, l := range lists {
		if l.Title == title {
			return l
		}
	}
	h.t.Fatalf("no list %q in %s", title, web)
	return spo.List{}
}

// publish sends a message to the planner as a user (or the parser) would.
func (h *harness) publish(subject string, m proto.Message, msgID string) {
	h.t.Helper()
	if _, err := bus.Publish(context.Background(), h.env.JS, subject, m, msgID); err != nil {
		h.t.Fatal(err)
	}
}

// settle waits until the stage has acknowledged or dead-lettered every message of its work queue.
func (h *harness) settle() {
	h.t.Helper()
	h.env.WaitSettled(h.t, topology.StreamPlans, 30*time.Second)
}

// specs returns the JobSpecs published for a plan.
func (h *harness) specs(planID string) []*amrpipev1.JobSpec {
	h.t.Helper()
	var out []*amrpipev1.JobSpec
	for _, m := range h.env.Messages(h.t, topology.StreamSpecs, topology.SpecSubject(planID)) {
		s := &amrpipev1.JobSpec{}
		if err := proto.Unmarshal(m.Data, s); err != nil {
			h.t.Fatal(err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != s.GetSpecId() {
			h.t.Errorf("spec %s published with Nats-Msg-Id %q", s.GetSpecId(), got)
		}
		out = append(out, s)
	}
	return out
}
