// Package dashboard is amrpipe's live web dashboard: one page (HTML, CSS and JavaScript embedded
// in the binary: no build step, nothing fetched from elsewhere, so it works offline) and a stream
// of server-sent events (/events) carrying the pipeline's state as read from JetStream: plans and
// their status, jobs by state, each job's progress, rate and ETA, throttling, the newest dead
// letters; and each plan's run report (/plans/<id>/report.html, pkg/runreport).
//
// Server-sent events, not websockets: the data flows one way, it is plain HTTP (no upgrade, no
// library on either side), and the browser's EventSource reconnects by itself.
//
// Everything is bounded: the jobs kept and sent (Options.MaxJobs, live ones first, then the most
// recently updated; every job is still counted), the plans and dead letters sent, the events per
// client (at most one per Options.Interval, each the whole picture, built once for all clients),
// the clients (Options.MaxClients), and the time a client may take to read an event
// (Options.WriteTimeout: a slower one is dropped; its browser reconnects). The feeds never wait
// for a client.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
)

// Options bound and configure the dashboard; zero values take the defaults.
type Options struct {
	// ValidationReport is the path of a validation report.html to link, served at
	// /validation/report.html once it exists ("": none).
	ValidationReport string
	// MaxJobs bounds the jobs kept in detail and sent (default 5,000); MaxPlans the plans sent
	// (default 200); MaxDeadLetters the newest dead letters kept and sent (default 100).
	MaxJobs, MaxPlans, MaxDeadLetters int
	// MaxClients bounds the event streams served at once (default 8); one more gets 503.
	MaxClients int
	// Interval is the least time between two events to one client (default 500 ms): changes in
	// between are coalesced into the next.
	Interval time.Duration
	// WriteTimeout is how long a client may take to take an event before it is dropped (default 10 s).
	WriteTimeout time.Duration
	// Resync is how often every job record is read again, in case the watch missed one (default 15 s).
	Resync time.Duration
	// PlanInterval is how often the status of the plans whose jobs changed is read (default 2 s).
	PlanInterval time.Duration
	// Log receives the feeds' troubles (default slog.Default()).
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxJobs, 5000)
	def(&o.MaxPlans, 200)
	def(&o.MaxDeadLetters, 100)
	def(&o.MaxClients, 8)
	defDur(&o.Interval, 500*time.Millisecond)
	defDur(&o.WriteTimeout, 10*time.Second)
	defDur(&o.Resync, 15*time.Second)
	defDur(&o.PlanInterval, 2*time.Second)
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

//go:embed static
var static embed.FS

// Paths the dashboard serves.
const (
	PathEvents     = "/events"
	PathValidation = "/validation/report.html"
)

// reportPath is where a plan's run report is served.
func reportPath(planID string) string { return "/plans/" + url.PathEscape(planID) + "/report.html" }

// Dashboard serves the page, the events and the reports; Run feeds it.
type Dashboard struct {
	o      Options
	log    *slog.Logger
	js     jetstream.JetStream
	store  *jobstore.Store
	client *client.Client
	st     *state
	mux    *http.ServeMux
	// clients holds a token per event stream served; reports one per report being built.
	clients, reports chan struct{}
	// loopback: served on a loopback address, so only loopback Host names are answered.
	loopback bool
	// deadNext and eventsNext are where the dead-letter and event feeds go on after a restart.
	deadNext, eventsNext uint64
}

// New returns a dashboard reading through nc (which the caller keeps and closes). Serve it with
// Run and an http.Server, or with Listen.
func New(ctx context.Context, nc *nats.Conn, o Options) (*Dashboard, error) {
	o = o.withDefaults()
	c, err := client.New(ctx, nc)
	if err != nil {
		return nil, err
	}
	store, err := jobstore.Open(ctx, c.JetStream(), time.Now)
	if err != nil {
		return nil, err
	}
	d := &Dashboard{o: o, log: o.Log, js: c.JetStream(), store: store, client: c, mux: http.NewServeMux(),
		clients: make(chan struct{}, o.MaxClients), reports: make(chan struct{}, 1)}
	d.st = newState(o)
	page, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("dashboard page: %w", err)
	}
	d.mux.Handle("GET /", http.FileServerFS(page))
	d.mux.HandleFunc("GET "+PathEvents, d.events)
	d.mux.HandleFunc("GET /plans/{plan}/report.html", d.report)
	d.mux.HandleFunc("GET "+PathValidation, d.validation)
	return d, nil
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.loopback && !loopbackHost(r.Host) {
		// A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) reads nothing.
		http.Error(w, "the dashboard answers only to localhost and loopback addresses", http.StatusForbidden)
		return
	}
	h := w.Header()
	// Nothing on the page comes from elsewhere; say so to the browser too.
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
	h.Set("X-Content-Type-Options", "nosniff")
	d.mux.ServeHTTP(w, r)
}

// loopbackHost tells whether a request's Host names this machine's loopback interface.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// validationURL is the validation report's link once the file exists.
func (d *Dashboard) validationURL() string {
	if d.o.ValidationReport == "" {
		return ""
	}
	if _, err := os.Stat(d.o.ValidationReport); err != nil {
		return ""
	}
	return PathValidation
}

// validation serves the validation report's file.
func (d *Dashboard) validation(w http.ResponseWriter, r *http.Request) {
	if d.validationURL() == "" {
		http.Error(w, "no validation report (yet)", http.StatusNotFound)
		return
	}
	http.ServeFile(w, r, d.o.ValidationReport)
}

// Server is a dashboard listening on an address.
type Server struct {
	// URL is the page's address (http://host:port/).
	URL string
	d   *Dashboard
	ln  net.Listener
}

// Listen binds addr ("127.0.0.1:0" picks a free port; keep it on the loopback interface unless
// the page may be seen by others: it shows tenant URLs) for a dashboard reading through nc.
func Listen(ctx context.Context, nc *nats.Conn, addr string, o Options) (*Server, error) {
	d, err := New(ctx, nc, o)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		d.loopback = true
	}
	return &Server{URL: "http://" + ln.Addr().String() + "/", d: d, ln: ln}, nil
}

// shutdownTimeout bounds the wait for requests in flight when the server stops.
const shutdownTimeout = 5 * time.Second

// Serve feeds and serves the dashboard until ctx ends (then it returns nil) or serving fails.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		_ = s.d.Run(ctx) // returns nil when ctx ends
	}()
	// Requests live in ctx: event streams end with it instead of holding Shutdown up.
	srv := &http.Server{Handler: s.d, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(s.ln) }()
	var err error
	select {
	case err = <-served:
		cancel()
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		err = srv.Shutdown(sctx)
		scancel()
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	<-fed
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}
