package server

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// progressArgs matches GetMigrationJobProgress(jobId='…',nextToken=…) in its documented form and the
// OData v3 guid'…' form some clients send, with the token quoted or not.
var progressArgs = regexp.MustCompile(`(?i)^GetMigrationJobProgress\(\s*jobId\s*=\s*(?:guid)?'([0-9a-f-]{36})'\s*,\s*nextToken\s*=\s*'?([0-9]*)'?\s*\)$`)

// serveSite handles the calls bound to SP.Site.
func (s *Server) serveSite(w http.ResponseWriter, r *http.Request, prefix, rest string) {
	site, err := s.cfg.Tenant.SiteOf(prefix)
	if err != nil {
		writeError(w, r, http.StatusNotFound, errNotFound("Site not found: "+prefix))
		return
	}
	method := methodName(rest)
	if m := progressArgs.FindStringSubmatch(rest); m != nil {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			writeError(w, r, http.StatusMethodNotAllowed, errInvalidArg("Use GET."))
			return
		}
		s.progress(w, r, strings.ToLower(m[1]), m[2])
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, r, http.StatusMethodNotAllowed, errInvalidArg("%s must be POSTed.", method))
		return
	}
	switch rest {
	case "CreateSPAsyncReadJob":
		s.createJob(w, r, site, method, false)
	case "CreateSPAsyncReadJobWithMultiUrl":
		s.createJob(w, r, site, method, true)
	case "ProvisionMigrationContainers":
		s.provision(w, r, method)
	case "GetMigrationJobStatus":
		s.status(w, r, method)
	case "DeleteMigrationJob":
		s.deleteJob(w, r, method)
	default:
		writeError(w, r, http.StatusNotFound, errNotFound("No such method on SP.Site: "+method))
	}
}

func (s *Server) provision(w http.ResponseWriter, r *http.Request, method string) {
	if s.cfg.Storage == nil {
		writeError(w, r, http.StatusInternalServerError, errInvalidArg("The simulator was started without a storage account for ProvisionMigrationContainers."))
		return
	}
	data, meta, err := provision(r.Context(), s.cfg.Storage, newGUID()[:8])
	if err != nil {
		s.log.Warn("provision failed", "err", err)
		writeError(w, r, http.StatusInternalServerError, spError{Code: -2146233088, Type: "Microsoft.SharePoint.SPException", Message: "Failed to provision migration containers."})
		return
	}
	key, err := newKey()
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, spError{Code: -2146233088, Type: "Microsoft.SharePoint.SPException", Message: "Failed to generate a key."})
		return
	}
	writeObject(w, r, method, "SP.ProvisionedMigrationContainersInfo", map[string]any{
		"DataContainerUri": data, "MetadataContainerUri": meta, "EncryptionKey": base64.StdEncoding.EncodeToString(key),
	})
}

// lookup finds a job for progress, status and delete calls; a job hidden by the "not-found" fault
// is reported missing.
func (s *Server) lookup(id string) *job {
	s.mu.Lock()
	j := s.jobs[strings.ToLower(id)]
	s.mu.Unlock()
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.gone {
		return nil
	}
	return j
}

var errJobNotFound = spError{Code: codeJobNotFound, Type: "Microsoft.SharePoint.SPException", Message: "Job not found"}

func (s *Server) progress(w http.ResponseWriter, r *http.Request, id, token string) {
	j := s.lookup(id)
	if j == nil {
		writeError(w, r, http.StatusInternalServerError, errJobNotFound)
		return
	}
	from := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 {
			writeError(w, r, http.StatusBadRequest, errInvalidArg("Invalid nextToken."))
			return
		}
		from = n
	}
	j.mu.Lock()
	expired := j.ended && s.cfg.Tenant.Now().Sub(j.endedAt) > s.cfg.StatusRetention
	from = min(from, len(j.events))
	to := min(len(j.events), from+s.cfg.ProgressPageSize)
	logs := make([]string, 0, to-from)
	for _, e := range j.events[from:to] {
		logs = append(logs, string(e))
	}
	j.mu.Unlock()
	if expired {
		writeError(w, r, http.StatusInternalServerError, spError{Code: codeJobStatusExpired, Type: "Microsoft.SharePoint.SPException", Message: "Job status expired"})
		return
	}
	next := strconv.Itoa(to)
	if verbose(r) {
		writeJSON(w, r, http.StatusOK, map[string]any{"d": map[string]any{"GetMigrationJobProgress": map[string]any{
			"__metadata": map[string]string{"type": "SP.MigrationJobProgress"},
			"Logs":       map[string]any{"__metadata": map[string]string{"type": "Collection(Edm.String)"}, "results": logs},
			"NextToken":  next,
		}}})
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"Logs": logs, "NextToken": next})
}

type idBody struct {
	ID string `json:"id"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, method string) {
	var b idBody
	if err := readBody(r, &b); err != nil || b.ID == "" {
		writeError(w, r, http.StatusBadRequest, errInvalidArg("Value cannot be null. Parameter name: id"))
		return
	}
	state := stateNone
	if j := s.lookup(b.ID); j != nil {
		j.mu.Lock()
		state = j.state
		j.mu.Unlock()
	}
	writeScalar(w, r, method, state)
}

// deleteJob cancels a queued or running job (JobCancelled, then JobEnd) or forgets a finished one
// (JobDeleted).
func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request, method string) {
	var b idBody
	if err := readBody(r, &b); err != nil || b.ID == "" {
		writeError(w, r, http.StatusBadRequest, errInvalidArg("Value cannot be null. Parameter name: id"))
		return
	}
	j := s.lookup(b.ID)
	if j == nil {
		writeError(w, r, http.StatusInternalServerError, errJobNotFound)
		return
	}
	j.mu.Lock()
	ended, running, cancel := j.ended, j.state == stateProcessing, j.cancel
	if !ended {
		j.canceled = true
	}
	j.mu.Unlock()
	switch {
	case ended:
		s.emit(r.Context(), j, "JobDeleted")
	case running && cancel != nil:
		cancel() // run() emits JobCancelled and JobEnd
	default:
		// Still queued: the worker will skip it, so end it here.
		s.emit(r.Context(), j, "JobCancelled", "CancelledByUser", "True", "TotalRetryCount", "0", "MigrationType", "AsyncRead", "MigrationDirection", "Export")
		s.emit(r.Context(), j, "JobEnd", "ObjectsProcessed", "0", "TotalRetryCount", "0", "MigrationType", "AsyncRead", "MigrationDirection", "Export")
		j.mu.Lock()
		j.state, j.ended, j.endedAt = stateNone, true, s.cfg.Tenant.Now()
		j.mu.Unlock()
	}
	writeScalar(w, r, method, true)
}
