// Package devstack runs the whole of amrpipe in one process: an embedded NATS JetStream server
// (or a given cluster), Azurite, the SharePoint simulator and the five stages of the stage table,
// each replica the very program its binary runs (stage.Main), configured by flags and environment
// as a deployment configures it, with its own runtime and NATS connection. The stack applies the
// topology once, as `amrctl topology apply` would, and the stages verify it. `amrctl dev` and the
// end-to-end tests use it.
package devstack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/registry"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// simToken is the simulator's bearer token inside the stack; it never leaves the process.
const simToken = "devstack-token"

// Options configures a stack.
type Options struct {
	// NATSURL is a running NATS server or cluster to use (URLs comma-separated, as -nats-url
	// takes them); empty starts an embedded server.
	NATSURL string
	// StreamReplicas is the replica count of the topology (3 on a 3-node cluster; default 1).
	StreamReplicas int
	// Profile is the simulated tenant.
	Profile tenant.Profile
	// Rate is the simulator's export speed per job in objects/s; 0 is unlimited.
	Rate float64
	// SimWorkers is how many AMR jobs the simulator exports at once.
	SimWorkers int
	// MaxManifestBytes is the simulator's manifest split size (default 25 MiB).
	MaxManifestBytes int
	// Replicas is how many replicas of every stage run (default 1).
	Replicas int
	// Queue makes SharePoint report through an Azure Queue too, read by the relay beside polling.
	Queue bool
	// Plaintext turns encryption off.
	Plaintext bool
	// Small and Large are the planner's thresholds (defaults 10K and 1M, SharePoint's guidance).
	Small, Large int64
	// PollInterval is the relay's progress polling interval (default 250 ms here).
	PollInterval time.Duration
	// AzuriteInMemory runs Azurite without its disk database (testenv.AzuriteOptions.InMemory).
	AzuriteInMemory bool
	// AzuriteSQL keeps Azurite's blob metadata in a MariaDB server of its own
	// (testenv.AzuriteOptions.SQL): for tens of thousands of blobs.
	AzuriteSQL bool
	// Faults are injected into the simulator from the start.
	Faults []server.Rule
	// Destination, when set, also serves a destination tenant derived from Profile
	// (tenant.NewDestination: copied sites under new URLs, seeded differences) on a second
	// simulator server, a tenant of its own host (DestURL).
	Destination *tenant.DestinationSpec
	// StageArgs are more flags of a stage's replicas, by stage name, after the stack's own (a
	// later flag wins): -tenant-polls-per-minute for the relay, -concurrency, ...
	StageArgs map[string][]string
	// Log receives the services' JSON logs; nil discards them.
	Log io.Writer
	// LogLevel of the services (default warn).
	LogLevel string
	// SpanProcessor, when set, is given every span of every stage (svc.Options.SpanProcessor).
	SpanProcessor sdktrace.SpanProcessor
}

// Stack is a running in-process amrpipe.
type Stack struct {
	opts Options
	// NATS is the embedded server; nil when Options.NATSURL named another.
	NATS    *testenv.NATSServer
	natsURL string
	Azurite *testenv.Azurite
	Tenant  *tenant.Tenant
	Sim     *server.Server
	// SimURL is the simulator's base URL (http://127.0.0.1:PORT): site URLs are SimURL + path.
	SimURL string
	// DestTenant, DestSim and DestURL are the destination tenant's, with Options.Destination.
	DestTenant *tenant.Tenant
	DestSim    *server.Server
	DestURL    string
	Conn       *nats.Conn
	JS         jetstream.JetStream
	Store      *jobstore.Store
	Storage    storage.Config

	simHTTP, destHTTP *http.Server
	secrets           map[string]string // the stages' environment

	mu     sync.Mutex
	stages map[string][]*replica
}

type replica struct {
	main   *stage.Main
	cancel context.CancelFunc
	done   chan error
}

// Start brings the stack up: JetStream, Azurite, the simulator, then every stage's replicas.
func Start(ctx context.Context, opts Options) (s *Stack, err error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	s = &Stack{opts: opts, stages: map[string][]*replica{}}
	// A failing step returns nil, err: close what was started through its own reference.
	started := s
	defer func() {
		if err != nil {
			err = errors.Join(err, started.Close())
			s = nil
		}
	}()
	s.natsURL = opts.NATSURL
	if s.natsURL == "" {
		if s.NATS, err = testenv.StartNATS(testenv.NATSOptions{}); err != nil {
			return nil, err
		}
		s.natsURL = s.NATS.ClientURL()
	}
	if s.Azurite, err = testenv.StartAzurite(ctx, testenv.AzuriteOptions{InMemory: opts.AzuriteInMemory, SQL: opts.AzuriteSQL}); err != nil {
		return nil, err
	}
	s.Storage = s.Azurite.StorageConfig()
	if opts.Queue {
		s.Storage.Queue = "amr-reports"
	}
	if err := s.startSimulator(); err != nil {
		return nil, err
	}
	// Applied once, as `amrctl topology apply` does; every stage verifies it.
	if s.Conn, s.JS, s.Store, err = testenv.OpenPipeline(ctx, s.natsURL, "devstack", opts.StreamReplicas, reconnectForever()...); err != nil {
		return nil, err
	}
	kek := make([]byte, keywrap.KeySize)
	if _, err := rand.Read(kek); err != nil {
		return nil, err
	}
	s.secrets = testenv.StageSecrets(simToken, s.Storage.Key, kek, "devstack")
	for _, d := range registry.All() {
		for range opts.Replicas {
			if err := s.StartStage(ctx, d.Name); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

func (s *Stack) startSimulator() error {
	var err error
	if s.Tenant, err = tenant.New(s.opts.Profile); err != nil {
		return err
	}
	if s.Sim, s.simHTTP, s.SimURL, err = s.serve(s.Tenant, s.opts.Faults); err != nil {
		return err
	}
	if s.opts.Destination == nil {
		return nil
	}
	if s.DestTenant, err = tenant.NewDestination(s.opts.Profile, *s.opts.Destination); err != nil {
		return err
	}
	s.DestSim, s.destHTTP, s.DestURL, err = s.serve(s.DestTenant, nil)
	return err
}

// serve starts a simulator server of tn on a loopback port of its own, storing its packages in
// the stack's Azurite account.
func (s *Stack) serve(tn *tenant.Tenant, faults []server.Rule) (*server.Server, *http.Server, string, error) {
	acct, err := s.Azurite.Account()
	if err != nil {
		return nil, nil, "", err
	}
	sim, err := server.New(server.Config{Tenant: tn, Token: simToken, Rate: s.opts.Rate, Workers: s.opts.SimWorkers,
		MaxManifestBytes: s.opts.MaxManifestBytes, Admin: true, Storage: acct, Faults: faults,
		Logger: slog.New(slog.NewJSONHandler(s.opts.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, "", errors.Join(fmt.Errorf("simulator listener: %w", err), sim.Close())
	}
	hs := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return sim, hs, "http://" + ln.Addr().String(), nil
}

// args are the command line of a stage's replica, as a deployment would set it.
func (s *Stack) args(d stage.Def) []string {
	args := testenv.StageArgs(d, testenv.StageFlags{NATSURL: s.natsURL, LogLevel: s.opts.LogLevel, Storage: s.Storage,
		Small: s.opts.Small, Large: s.opts.Large, Plaintext: s.opts.Plaintext, PollInterval: s.opts.PollInterval,
		Replicas: s.opts.StreamReplicas})
	return append(args, s.opts.StageArgs[d.Name]...)
}

// env is the environment of every replica: the secrets, which are never flags.
func (s *Stack) env(name string) (string, bool) {
	v, ok := s.secrets[name]
	return v, ok
}

// StartStage adds one replica of a stage and waits until it is ready.
func (s *Stack) StartStage(ctx context.Context, name string) error {
	d, err := registry.Lookup(name)
	if err != nil {
		return err
	}
	m := stage.NewMain(d)
	m.Options = svc.Options{LogOutput: s.opts.Log, Lookup: s.env, SpanProcessor: s.opts.SpanProcessor}
	if err := m.ParseFlags(s.args(d)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &replica{main: m, cancel: cancel, done: make(chan error, 1)}
	// The replica's goroutines carry its stage's name as a profiler label, so a CPU profile of
	// the stack says what each stage cost (the benchmarks read it).
	go pprof.Do(rctx, pprof.Labels("stage", name), func(ctx context.Context) { r.done <- m.Run(ctx) })
	for {
		if rt := m.Runtime(); rt != nil && rt.Ready(ctx) == nil {
			break
		}
		select {
		case err := <-r.done:
			cancel()
			return errors.Join(fmt.Errorf("%s: %w", name, err), m.Close())
		case <-ctx.Done():
			return errors.Join(ctx.Err(), r.stop())
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.mu.Lock()
	s.stages[name] = append(s.stages[name], r)
	s.mu.Unlock()
	return nil
}

// StopStage stops replica i of a stage (as a crash or a scale-down would) and removes it.
func (s *Stack) StopStage(name string, i int) error {
	s.mu.Lock()
	reps := s.stages[name]
	if i < 0 || i >= len(reps) {
		s.mu.Unlock()
		return fmt.Errorf("no replica %d of %s", i, name)
	}
	r := reps[i]
	s.stages[name] = append(reps[:i:i], reps[i+1:]...)
	s.mu.Unlock()
	return r.stop()
}

func (r *replica) stop() error {
	r.cancel()
	err := <-r.done
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, r.main.Close())
}

// Connect opens another connection to the stack's JetStream, for a consumer that should not share
// the stack's own connection (a downstream sink reading hundreds of megabytes).
func (s *Stack) Connect() (*nats.Conn, jetstream.JetStream, error) {
	return testenv.Connect(s.natsURL, "devstack-consumer", reconnectForever()...)
}

// reconnectForever keeps a harness's connection through a cluster node's restart.
func reconnectForever() []nats.Option {
	return []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
}

// NATSURL is the stack's NATS URL(s), as -nats-url takes them.
func (s *Stack) NATSURL() string { return s.natsURL }

// SiteURL is the absolute URL of a server-relative path on the simulator.
func (s *Stack) SiteURL(path string) string { return s.SimURL + path }

// DestSiteURL is the absolute URL of a server-relative path on the destination's simulator.
func (s *Stack) DestSiteURL(path string) string { return s.DestURL + path }

// Submit publishes a plan, as `amrctl plan submit` does.
func (s *Stack) Submit(ctx context.Context, plan *amrpipev1.PlanRequest) error {
	_, err := bus.Publish(ctx, s.JS, topology.SubjectPlanSubmit, plan, "plan/"+plan.GetPlanId())
	return err
}

// Close stops everything, stages first.
func (s *Stack) Close() error {
	var errs []error
	s.mu.Lock()
	stages := s.stages
	s.stages = map[string][]*replica{}
	s.mu.Unlock()
	all := registry.All()
	for i := len(all) - 1; i >= 0; i-- {
		for _, r := range stages[all[i].Name] {
			errs = append(errs, r.stop())
		}
	}
	if s.Conn != nil {
		s.Conn.Close()
	}
	for _, sim := range []struct {
		hs  *http.Server
		srv *server.Server
	}{{s.simHTTP, s.Sim}, {s.destHTTP, s.DestSim}} {
		if sim.hs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := sim.hs.Shutdown(ctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				// The stages are stopped: a connection still busy (a busy machine's slow answer) is
				// closed rather than waited for, as the stack is going away.
				err = sim.hs.Close()
			}
			errs = append(errs, err)
		}
		if sim.srv != nil {
			errs = append(errs, sim.srv.Close())
		}
	}
	if s.Azurite != nil {
		errs = append(errs, s.Azurite.Close())
	}
	if s.NATS != nil {
		errs = append(errs, s.NATS.Close())
	}
	return errors.Join(errs...)
}
