// Package server is the simulator's SharePoint REST surface (docs/rest-surface.md): the AMR and
// migration-job calls bound to SP.Site, the folder calls bound to SP.Web, the job engine that
// exports the synthetic tenant into real Azure Storage, fault injection and the test-only admin API.
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// Config configures a Server.
type Config struct {
	Tenant *tenant.Tenant
	// Token is the bearer token every request must carry.
	Token string
	// Rate is the export speed in SPObjects per second per job; 0 means unlimited.
	Rate float64
	// Workers is how many jobs run at once (SharePoint queues the rest); default 4.
	Workers int
	// MaxManifestBytes is where manifests split (default 25 MiB, like SharePoint).
	MaxManifestBytes int
	// StatusRetention is how long a finished job's status and events stay readable (default 5 days
	// of simulated time); afterwards progress calls fail with -2147213146.
	StatusRetention time.Duration
	// Admin enables the test-only /_spsim/ API.
	Admin bool
	// Storage is the account ProvisionMigrationContainers creates containers in (SharePoint uses
	// its own Azure account; the simulator the one it is given, usually Azurite); optional.
	Storage *storage.Account
	// Faults are injected from the start (also settable through the admin API).
	Faults []Rule
	// ProgressPageSize caps the events one GetMigrationJobProgress answer carries (default 200).
	ProgressPageSize int
	// ManifestFolderTotals writes SMTotalFileCount and SMTotalSize into each folder's list item in
	// the manifests. Off by default: no public AMR output shows them there (amr-protocol.md §4.1),
	// so without it the planner sizes a probe's subfolders through the folder REST calls.
	ManifestFolderTotals bool
	Logger               *slog.Logger
	// HTTPClient is used for uploads and queue messages; nil means a default client.
	HTTPClient *http.Client
}

// Server is a running simulator.
type Server struct {
	cfg    Config
	log    *slog.Logger
	faults *faultSet

	mu    sync.Mutex
	jobs  map[string]*job
	queue chan *job
	// buffers are the package buffers of finished exports, grown to the manifest size, for the
	// next ones (export.Options.Buffer): one per worker, smallest first.
	buffers [][]byte
	// calls counts the REST calls answered, by method: what a client costs a tenant.
	calls map[string]int64

	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// New validates the configuration and starts the job workers; Close stops them.
func New(cfg Config) (*Server, error) {
	if cfg.Tenant == nil {
		return nil, errors.New("spsim: a tenant is required")
	}
	if cfg.Token == "" {
		return nil, errors.New("spsim: a bearer token is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.MaxManifestBytes <= 0 {
		cfg.MaxManifestBytes = 25 << 20
	}
	if cfg.StatusRetention <= 0 {
		cfg.StatusRetention = 5 * 24 * time.Hour
	}
	if cfg.ProgressPageSize <= 0 {
		cfg.ProgressPageSize = 200
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Minute}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		faults: newFaultSet(cfg.Faults),
		jobs:   map[string]*job{},
		calls:  map[string]int64{},
		// The queue is deep enough that job creation never blocks on it.
		queue:  make(chan *job, 100000),
		ctx:    ctx,
		cancel: cancel,
	}
	for range cfg.Workers {
		s.wg.Add(1)
		go s.worker()
	}
	return s, nil
}

// Close stops the workers; running jobs are abandoned (SharePoint would finish them).
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Calls returns the REST calls answered so far (the admin API's excepted), by method name:
// GetMigrationJobProgress, CreateSPAsyncReadJob, lists, ... A throttled or refused call counts:
// SharePoint counts it against the tenant too.
func (s *Server) Calls() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// Handler returns the HTTP handler of the REST surface (and of the admin API when enabled).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Admin && strings.HasPrefix(r.URL.Path, "/_spsim/") {
		s.serveAdmin(w, r)
		return
	}
	prefix, rest, ok := strings.Cut(r.URL.Path, "/_api/")
	if !ok {
		writeError(w, r, http.StatusNotFound, errNotFound("no such endpoint"))
		return
	}
	method := methodName(rest)
	if !s.authorized(r) {
		writeUnauthorized(w, r)
		return
	}
	s.mu.Lock()
	s.calls[method]++
	s.mu.Unlock()
	if prefix == "" {
		prefix = "/"
	}
	if f := s.faults.match(method); f != nil {
		s.log.Info("fault injected", "method", method, "status", f.Status, "processed", f.Processed, "drop", f.Drop)
		var real *recorded
		if f.Processed {
			real = newRecorded()
			s.route(real, r, prefix, rest)
		}
		f.answer(w, r, real)
		return
	}
	s.route(w, r, prefix, rest)
}

// route serves a REST call under /_api/.
func (s *Server) route(w http.ResponseWriter, r *http.Request, prefix, rest string) {
	switch {
	case strings.HasPrefix(rest, "site/"):
		s.serveSite(w, r, prefix, strings.TrimPrefix(rest, "site/"))
	case rest == "web" || strings.HasPrefix(rest, "web/"):
		s.serveWeb(w, r, prefix, strings.TrimPrefix(strings.TrimPrefix(rest, "web"), "/"))
	default:
		writeError(w, r, http.StatusNotFound, errNotFound("no such endpoint"))
	}
}

func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

// methodName is the REST method a path names, for fault matching and logs:
// "site/GetMigrationJobProgress(jobId='…')" → "GetMigrationJobProgress", "web/lists" → "lists".
func methodName(rest string) string {
	seg := rest
	if i := strings.LastIndexByte(strings.SplitN(seg, "(", 2)[0], '/'); i >= 0 {
		seg = seg[i+1:]
	}
	if i := strings.IndexByte(seg, '('); i >= 0 {
		seg = seg[:i]
	}
	return seg
}

// verbose reports whether the client asked for the odata=verbose shape.
func verbose(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "odata=verbose")
}

// writeObject answers a single entity: nometadata as the bare object, verbose under d.<method>.
func writeObject(w http.ResponseWriter, r *http.Request, method, typ string, fields map[string]any) {
	if verbose(r) {
		inner := map[string]any{"__metadata": map[string]string{"type": typ}}
		for k, v := range fields {
			inner[k] = v
		}
		writeJSON(w, r, http.StatusOK, map[string]any{"d": map[string]any{method: inner}})
		return
	}
	writeJSON(w, r, http.StatusOK, fields)
}

// writeScalar answers a primitive return value.
func writeScalar(w http.ResponseWriter, r *http.Request, method string, v any) {
	if verbose(r) {
		writeJSON(w, r, http.StatusOK, map[string]any{"d": map[string]any{method: v}})
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"value": v})
}

// writeCollection answers a collection of entities.
func writeCollection(w http.ResponseWriter, r *http.Request, items []map[string]any) {
	if items == nil {
		items = []map[string]any{}
	}
	if verbose(r) {
		writeJSON(w, r, http.StatusOK, map[string]any{"d": map[string]any{"results": items}})
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"value": items})
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	ct := "application/json;odata=nometadata;charset=utf-8"
	if verbose(r) {
		ct = "application/json;odata=verbose;charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		// The client went away; nothing else to tell it.
		return
	}
}

// spError is a SharePoint error body.
type spError struct {
	Code    int64
	Type    string
	Message string
}

func (e spError) Error() string { return fmt.Sprintf("%d, %s: %s", e.Code, e.Type, e.Message) }

// The codes the simulator answers with (docs/rest-surface.md §3).
const (
	codeChangeTokenExpired = -2146232832
	codeOperationCanceled  = -2147213196
	codeJobNotFound        = -2147213145
	codeJobStatusExpired   = -2147213146
	codeAccessDenied       = -2147024891
	codeInvalidArg         = -2147024809
	codeFileNotFound       = -2147024894
)

func errInvalidArg(format string, args ...any) spError {
	return spError{Code: codeInvalidArg, Type: "System.ArgumentException", Message: fmt.Sprintf(format, args...)}
}

func errNotFound(msg string) spError {
	return spError{Code: codeFileNotFound, Type: "System.IO.FileNotFoundException", Message: msg}
}

func writeError(w http.ResponseWriter, r *http.Request, status int, e spError) {
	body := map[string]any{
		"code":    fmt.Sprintf("%d, %s", e.Code, e.Type),
		"message": map[string]string{"lang": "en-US", "value": e.Message},
	}
	key := "odata.error"
	if verbose(r) {
		key = "error"
	}
	writeJSON(w, r, status, map[string]any{key: body})
}

// writeUnauthorized answers a missing or wrong bearer token as SharePoint answers a token it
// cannot validate: HTTP 401 with a flat {"error_description":…} body, not an OData error
// (docs/amr-protocol.md §1.4, §5.2), and an x-ms-diagnostics header. The body is real output
// (SharePoint/sp-dev-docs#5889); the header value is one quoted in SharePoint/sp-dev-docs#7152.
// What SharePoint sends for a request without any token is not documented; the simulator answers
// it the same way.
func writeUnauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-ms-diagnostics", `3000006;reason="Token contains invalid signature.";category="invalid_client"`)
	writeJSON(w, r, http.StatusUnauthorized, map[string]string{"error_description": "Invalid issuer or signature."})
}

// readBody decodes a JSON request body into v; an empty body leaves v untouched.
func readBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<20))
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
