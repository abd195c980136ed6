// Package svc is the runtime every amrpipe service shares: the NATS connection and JetStream
// handle, /healthz, /readyz and /metrics, a JSON logger, the OpenTelemetry tracer provider, and a
// run group that stops every component when one returns or on SIGTERM/SIGINT.
//
//	rt, err := svc.New(ctx, cfg, svc.Options{})
//	defer rt.Close()
//	if err := rt.EnsureTopology(ctx); err != nil { ... }
//	cons, err := topology.BindConsumer(ctx, rt.JS, topology.ConsumerDecryptor)
//	rt.Go("decryptor", func(ctx context.Context) error {
//		return bus.Consume(ctx, cons, handle, rt.ConsumeOptions("decryptor"))
//	})
//	return rt.Run(ctx)
package svc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/buildinfo"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// Options are the process-level inputs of New; the zero value uses the process's own.
type Options struct {
	// LogOutput receives the JSON log (default os.Stderr).
	LogOutput io.Writer
	// TraceOutput receives spans with -otel stdout (default os.Stdout).
	TraceOutput io.Writer
	// Lookup reads the environment (default os.LookupEnv).
	Lookup func(string) (string, bool)
	// Signals stop Run: nil means SIGINT and SIGTERM, an empty slice none (tests).
	Signals []os.Signal
	// SpanProcessor, when set, is given every span besides the configured exporters (tests record
	// them with go.opentelemetry.io/otel/sdk/trace/tracetest).
	SpanProcessor sdktrace.SpanProcessor
}

// Runtime is one service's connection to the world. Its exported fields are ready after New.
type Runtime struct {
	Config   Config
	Log      *slog.Logger
	Conn     *nats.Conn
	JS       jetstream.JetStream
	Registry *prometheus.Registry
	// Metrics are the bus stage metrics, registered in Registry; pass them to bus.Consume.
	Metrics *bus.Metrics
	// Tracer is the tracer provider; pass it to bus.Consume.
	Tracer *sdktrace.TracerProvider

	signals  []os.Signal
	ready    atomic.Bool  // topology verified
	stuck    atomic.Int64 // handlers running past their deadline (bus.ConsumeOptions.Stuck)
	checksMu sync.Mutex
	checks   map[string]func(context.Context) error
	listener net.Listener
	server   *http.Server
	serveErr chan error
	closed   chan struct{} // closed by the NATS ClosedHandler
	group    Group
	once     sync.Once
}

// New connects to NATS (retrying in the background while the server is away), sets up logging,
// tracing and metrics, and starts serving /healthz, /readyz and /metrics on cfg.HTTPAddr. The
// runtime is not ready until EnsureTopology succeeded. With cfg.StreamMetricsInterval set, Run
// samples the fill of the topology's streams (amr_stream_* metrics).
func New(ctx context.Context, cfg Config, o Options) (*Runtime, error) {
	if cfg.Name == "" {
		return nil, errors.New("svc: no service name")
	}
	if o.LogOutput == nil {
		o.LogOutput = os.Stderr
	}
	if o.TraceOutput == nil {
		o.TraceOutput = os.Stdout
	}
	if o.Lookup == nil {
		o.Lookup = os.LookupEnv
	}
	if o.Signals == nil {
		o.Signals = []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	}
	cfg.DrainTimeout = flagenv.Or(cfg.DrainTimeout, 30*time.Second)
	log, err := newLogger(o.LogOutput, cmp.Or(cfg.LogLevel, "info"), cfg.Name)
	if err != nil {
		return nil, err
	}
	r := &Runtime{Config: cfg, Log: log, signals: o.Signals, checks: map[string]func(context.Context) error{},
		serveErr: make(chan error, 1), closed: make(chan struct{})}

	r.Tracer, err = newTracerProvider(ctx, cfg.Name, cmp.Or(cfg.OTel, "auto"), o.Lookup, o.TraceOutput, o.SpanProcessor)
	if err != nil {
		return nil, err
	}
	r.Registry = prometheus.NewRegistry()
	r.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Read().Collector())
	if r.Metrics, err = bus.NewMetrics(r.Registry); err != nil {
		return nil, errors.Join(err, r.shutdownTracer())
	}
	streams, err := newStreamMetrics(r.Registry)
	if err != nil {
		return nil, errors.Join(err, r.shutdownTracer())
	}
	if err := r.connect(); err != nil {
		return nil, errors.Join(err, r.shutdownTracer())
	}
	if err := r.serveHTTP(); err != nil {
		r.Conn.Close()
		return nil, errors.Join(err, r.shutdownTracer())
	}
	if cfg.StreamMetricsInterval > 0 {
		r.Go("stream-metrics", func(ctx context.Context) error {
			streams.run(ctx, r.JS, cfg.StreamMetricsInterval, r.Log)
			return nil
		})
	}
	return r, nil
}

func (r *Runtime) connect() error {
	var closeOnce sync.Once
	opts := []nats.Option{
		nats.Name(r.Config.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { r.Log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { r.Log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			r.Log.Error("nats", "subject", subject, "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { closeOnce.Do(func() { close(r.closed) }) }),
	}
	if r.Config.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(r.Config.NATSCreds))
	}
	if r.Config.NATSUser != "" {
		opts = append(opts, nats.UserInfo(r.Config.NATSUser, r.Config.NATSPassword))
	}
	nc, err := nats.Connect(cmp.Or(r.Config.NATSURL, nats.DefaultURL), opts...)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	r.Conn, r.JS = nc, js
	return nil
}

func (r *Runtime) serveHTTP() error {
	ln, err := net.Listen("tcp", cmp.Or(r.Config.HTTPAddr, ":8080"))
	if err != nil {
		return fmt.Errorf("listen %s: %w", r.Config.HTTPAddr, err)
	}
	r.listener = ln
	r.server = &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := r.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.serveErr <- fmt.Errorf("http server: %w", err)
		}
	}()
	r.Log.Info("serving health and metrics", "addr", ln.Addr().String())
	return nil
}

// Addr is the address /healthz, /readyz and /metrics are served on.
func (r *Runtime) Addr() net.Addr { return r.listener.Addr() }

// Handler serves /healthz (the process is alive), /readyz (NATS connected, topology verified,
// every added check passing; 503 with the reason otherwise) and /metrics.
func (r *Runtime) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		if err := r.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{Registry: r.Registry}))
	return mux
}

// Ready returns nil when the service can take work, else why not.
func (r *Runtime) Ready(ctx context.Context) error {
	if !r.Conn.IsConnected() {
		return fmt.Errorf("nats %s", r.Conn.Status())
	}
	if !r.ready.Load() {
		return errors.New("topology not verified")
	}
	if n := r.stuck.Load(); n > 0 {
		return fmt.Errorf("%d handlers stuck past their deadline (-handler-timeout)", n)
	}
	r.checksMu.Lock()
	defer r.checksMu.Unlock()
	for name, check := range r.checks {
		if err := check(ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// AddReadyCheck adds a readiness condition of the service (e.g. the blob store is reachable).
func (r *Runtime) AddReadyCheck(name string, check func(context.Context) error) {
	r.checksMu.Lock()
	defer r.checksMu.Unlock()
	r.checks[name] = check
}

// EnsureTopology verifies the pipeline's streams, buckets and consumers (topology.Verify),
// applying them first when the service was started with -apply-topology (topology.Ensure). It
// retries while NATS is unreachable or something is missing (another service or `amrctl topology
// apply` may be about to create it) until it succeeds (the runtime becomes ready) or ctx ends,
// and fails at once when the topology is configured in a way the pipeline cannot use, or when
// applying it would lower a replica count or a size limit: the service refuses to start rather
// than run on, or turn, a topology it does not fit.
func (r *Runtime) EnsureTopology(ctx context.Context) error {
	o := topology.Options{Replicas: r.Config.Replicas}
	err := r.retry(ctx, "verify topology", 30*time.Second, func(ctx context.Context) error {
		err := r.ensureTopology(ctx, o)
		switch {
		case errors.Is(err, topology.ErrLower), errors.Is(err, topology.ErrMismatch):
			r.Log.Error("refusing to start", "err", err)
			return backoff.Permanent(fmt.Errorf("refusing to start: %w", err))
		case errors.Is(err, topology.ErrMissing):
			return fmt.Errorf("waiting for the topology (run amrctl topology apply, or start one service with -apply-topology): %w", err)
		}
		return err
	})
	if err != nil {
		return err
	}
	r.ready.Store(true)
	return nil
}

// Retry runs fn until it succeeds or ctx ends, each try within 10 s, backing off from 1 s to
// 30 s and logging each failure: for what a service opens on JetStream as it starts (the
// topology, its buckets, object stores and consumers), which fails only while NATS or JetStream
// is away, so that the service waits for it instead of exiting (nats-server restarting while a
// service starts). The bound on a try matters: a request sent as the server went down is lost,
// and its reply would be waited for as long as ctx lasts.
func (r *Runtime) Retry(ctx context.Context, what string, fn func(context.Context) error) error {
	return r.retry(ctx, what, 10*time.Second, fn)
}

// retry is Retry with each try bounded by within; an error marked backoff.Permanent ends it.
func (r *Runtime) retry(ctx context.Context, what string, within time.Duration, fn func(context.Context) error) error {
	try := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		return fn(ctx)
	}
	err := backoff.Retry(ctx, time.Second, 30*time.Second, try, func(err error, wait time.Duration) {
		r.Log.Warn(what, "err", err, "retry_in", wait.String())
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (r *Runtime) ensureTopology(ctx context.Context, o topology.Options) error {
	if r.Config.ApplyTopology {
		if err := topology.Ensure(ctx, r.JS, o); err != nil {
			if errors.Is(err, topology.ErrLower) {
				return fmt.Errorf("this service was started with -apply-topology -replicas %d: %w", o.Replicas, err)
			}
			return err
		}
	}
	// A standalone server's restart loses the in-memory manifests store; a service started after
	// it creates the store again rather than wait for it (topology.RestoreManifests).
	if created, err := topology.RestoreManifests(ctx, r.JS, o); err != nil {
		return err
	} else if created {
		r.Log.Warn("object store was gone (a server restart empties a store held in memory); created it again", "store", topology.ObjectManifests)
	}
	return topology.Verify(ctx, r.JS, o)
}

// ConsumeOptions returns bus options for stage wired to this runtime: JetStream, metrics,
// tracer, logger and drain timeout. The caller sets Concurrency and what else the stage needs.
func (r *Runtime) ConsumeOptions(stage string) bus.ConsumeOptions {
	return bus.ConsumeOptions{
		Stage:          stage,
		JS:             r.JS,
		Metrics:        r.Metrics,
		TracerProvider: r.Tracer,
		Logger:         r.Log,
		DrainTimeout:   r.Config.DrainTimeout,
		HandlerTimeout: r.Config.HandlerTimeout,
		Stuck:          &r.stuck,
		MaxFailures:    r.Config.MaxFailures,
		MaxDelay:       r.Config.RetryMaxDelay,
	}
}

// Go adds a component to Run: fn runs until it returns or its context is cancelled because
// another component returned, Run's ctx ended or a signal arrived.
func (r *Runtime) Go(name string, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	r.group.Add(func() error {
		err := fn(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r.Log.Info("component stopped", "component", name)
		return nil
	}, func(error) { cancel() })
}

// Run runs the components added with Go until the first returns, ctx ends or a signal arrives,
// then cancels the others and waits for them (they drain). It returns the first component's
// error, or nil after a signal or the end of ctx.
func (r *Runtime) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(r.signals) > 0 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, r.signals...)
		defer stop()
	}
	r.group.Add(func() error {
		select {
		case <-ctx.Done():
			r.Log.Info("shutting down", "cause", context.Cause(ctx))
			return nil
		case err := <-r.serveErr:
			return err
		}
	}, func(error) { cancel() })
	return r.group.Run()
}

// Close drains the NATS connection (publishes in flight are flushed), flushes and stops the
// tracer, and stops the HTTP server. It is safe to call more than once.
func (r *Runtime) Close() error {
	var err error
	r.once.Do(func() {
		r.ready.Store(false)
		err = errors.Join(r.drainNATS(), r.shutdownTracer(), r.shutdownHTTP())
	})
	return err
}

func (r *Runtime) drainNATS() error {
	if err := r.Conn.Drain(); err != nil {
		r.Conn.Close() // not connected: nothing to drain
		return nil
	}
	select {
	case <-r.closed:
		return nil
	case <-time.After(r.Config.DrainTimeout):
		r.Conn.Close()
		return fmt.Errorf("nats drain: not done after %s", r.Config.DrainTimeout)
	}
}

func (r *Runtime) shutdownTracer() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Tracer.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

func (r *Runtime) shutdownHTTP() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.server.Shutdown(ctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
