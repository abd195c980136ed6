package stage_test

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/registry"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestStartWaitsForNATS: nats-server goes away after a stage ensured the topology and before it
// bound its buckets and consumer, for longer than a JetStream call waits (the chaos suite killed it
// just as a decryptor started, and the decryptor exited: "bind bucket amr_plans: context deadline
// exceeded"). Opening the deps and binding the consumer wait for the server instead, and the
// stage consumes once it is back.
func TestStartWaitsForNATS(t *testing.T) {
	dir := t.TempDir()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	start := func() *testenv.NATSServer {
		srv, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: dir, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := start()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := svc.New(ctx, svc.Config{Name: "planner", NATSURL: srv.ClientURL(), HTTPAddr: "127.0.0.1:0", OTel: "none", LogLevel: "error", ApplyTopology: true},
		svc.Options{LogOutput: io.Discard, Signals: []os.Signal{}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if err := rt.EnsureTopology(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// Away for longer than a JetStream call waits (5 s).
	back := make(chan *testenv.NATSServer, 1)
	go func() { time.Sleep(7 * time.Second); back <- start() }()
	defer func() {
		if err := (<-back).Close(); err != nil {
			t.Error(err)
		}
	}()

	d, err := registry.Lookup(topology.StagePlanner)
	if err != nil {
		t.Fatal(err)
	}
	// As in a service, no deadline: a JetStream call then waits its own 5 s.
	deps, err := stage.Open(context.Background(), d, stage.Config{SharePoint: spo.Config{Token: "t", UserAgent: "ISV|amrpipe|amrpipe-test/0.1"}}, rt, nil)
	if err != nil {
		t.Fatalf("Open while nats-server was away: %v", err)
	}
	got := make(chan string, 1)
	cctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- deps.Consume(cctx, stage.Consumer{Name: topology.ConsumerPlanner, Handler: func(_ context.Context, msg jetstream.Msg) error {
			got <- msg.Subject()
			return nil
		}})
	}()
	if _, err := bus.Publish(ctx, rt.JS, topology.SubjectPlanSubmit, &amrpipev1.PlanRequest{PlanId: "p"}, "plan/p"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != topology.SubjectPlanSubmit {
			t.Errorf("consumed %s", s)
		}
	case err := <-done:
		t.Fatalf("Consume ended: %v", err)
	case <-ctx.Done():
		t.Fatal("nothing consumed after nats-server came back")
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Consume: %v", err)
	}
}
