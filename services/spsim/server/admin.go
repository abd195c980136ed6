package server

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// serveAdmin is the test-only API under /_spsim/ (docs/rest-surface.md §4). It needs the bearer
// token too, so a simulator exposed by mistake cannot be steered by strangers.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		writeError(w, r, http.StatusUnauthorized, spError{Code: codeAccessDenied, Type: "System.UnauthorizedAccessException", Message: "Access denied."})
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/_spsim/")
	switch {
	case path == "faults" && r.Method == http.MethodPost:
		var doc struct {
			Rules []Rule `json:"rules"`
		}
		if err := readBody(r, &doc); err != nil {
			writeError(w, r, http.StatusBadRequest, errInvalidArg("bad faults document: %v", err))
			return
		}
		if err := validateRules(doc.Rules); err != nil {
			writeError(w, r, http.StatusBadRequest, errInvalidArg("%v", err))
			return
		}
		s.faults.set(doc.Rules)
		writeJSON(w, r, http.StatusOK, map[string]any{"rules": len(doc.Rules)})
	case path == "faults" && r.Method == http.MethodDelete:
		s.faults.set(nil)
		writeJSON(w, r, http.StatusOK, map[string]any{"rules": 0})
	case path == "differences" && r.Method == http.MethodGet:
		t := s.cfg.Tenant
		writeJSON(w, r, http.StatusOK, map[string]any{"differences": t.Seeded(), "logins": t.LoginMap(), "sites": t.SiteMap()})
	case path == "calls" && r.Method == http.MethodGet:
		writeJSON(w, r, http.StatusOK, map[string]any{"calls": s.Calls()})
	case path == "mutate" && r.Method == http.MethodPost:
		var b struct {
			Changes int `json:"changes"`
		}
		if err := readBody(r, &b); err != nil || b.Changes <= 0 {
			writeError(w, r, http.StatusBadRequest, errInvalidArg("changes must be a positive number"))
			return
		}
		changes := s.cfg.Tenant.Mutate(b.Changes)
		writeJSON(w, r, http.StatusOK, map[string]any{"changes": changes})
	case path == "clock" && r.Method == http.MethodPost:
		var b struct {
			Advance string `json:"advance"`
		}
		if err := readBody(r, &b); err != nil {
			writeError(w, r, http.StatusBadRequest, errInvalidArg("bad body"))
			return
		}
		d, err := time.ParseDuration(b.Advance)
		if err != nil || d < 0 {
			writeError(w, r, http.StatusBadRequest, errInvalidArg("advance must be a positive Go duration such as 1440h"))
			return
		}
		s.cfg.Tenant.Advance(d)
		writeJSON(w, r, http.StatusOK, map[string]any{"now": s.cfg.Tenant.Now()})
	case strings.HasPrefix(path, "jobs/") && strings.HasSuffix(path, "/truth") && r.Method == http.MethodGet:
		id := strings.TrimSuffix(strings.TrimPrefix(path, "jobs/"), "/truth")
		s.mu.Lock()
		j := s.jobs[strings.ToLower(id)]
		s.mu.Unlock()
		if j == nil {
			writeError(w, r, http.StatusNotFound, errJobNotFound)
			return
		}
		s.writeTruth(w, r, j.targets, j.opts)
	case path == "truth" && r.Method == http.MethodPost:
		var b struct {
			URLs        []string           `json:"urls"`
			ReadOptions tenant.ReadOptions `json:"readOptions"`
		}
		if err := readBody(r, &b); err != nil || len(b.URLs) == 0 {
			writeError(w, r, http.StatusBadRequest, errInvalidArg("urls are required"))
			return
		}
		targets := make([]tenant.Target, 0, len(b.URLs))
		for _, u := range b.URLs {
			t, err := s.cfg.Tenant.Resolve(serverRelative(u))
			if err != nil {
				writeTenantError(w, r, err)
				return
			}
			targets = append(targets, t)
		}
		s.writeTruth(w, r, targets, b.ReadOptions)
	default:
		writeError(w, r, http.StatusNotFound, errNotFound("no such admin endpoint"))
	}
}

// truthLine is one object a job must yield.
type truthLine struct {
	Type    tenant.ObjectType `json:"type"`
	ID      string            `json:"id"`
	URL     string            `json:"url"`
	Deleted bool              `json:"deleted,omitempty"`
}

// writeTruth streams the ground truth as JSON lines: exactly the SPObjects the job's manifests hold.
func (s *Server) writeTruth(w http.ResponseWriter, r *http.Request, targets []tenant.Target, opts tenant.ReadOptions) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	err := s.cfg.Tenant.Walk(r.Context(), targets, opts, func(o *tenant.Object) error {
		return enc.Encode(truthLine{Type: o.Type, ID: o.ID, URL: o.ServerURL, Deleted: o.IsDeleted})
	})
	if err != nil {
		// Headers are gone; an error line tells the reader the truth is incomplete.
		_ = enc.Encode(map[string]string{"error": err.Error()})
	}
	if err := bw.Flush(); err != nil {
		s.log.Debug("truth not delivered", "err", err)
	}
}
