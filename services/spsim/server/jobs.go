package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/amrpipe/amrpipe/services/spsim/export"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// Job states as GetMigrationJobStatus reports them (SPMigrationJobState).
const (
	stateNone       = 0
	stateQueued     = 2
	stateProcessing = 4
)

// maxURLs is SharePoint's limit of URLs in one CreateSPAsyncReadJobWithMultiUrl call.
const maxURLs = 5000

// job is one AMR job. containerURL, queueURL and key are secrets: never log them.
type job struct {
	id           string
	site         tenant.Site
	siteURL      string // absolute
	urls         []string
	targets      []tenant.Target
	crossWeb     bool
	opts         tenant.ReadOptions
	key          []byte
	containerURL string
	queueURL     string
	changeToken  string
	faults       []Rule
	cancel       context.CancelFunc

	mu       sync.Mutex
	state    int
	events   [][]byte
	ended    bool
	endedAt  time.Time // simulated clock
	canceled bool
	gone     bool // the "not-found" fault: SharePoint lost the job
}

func (j *job) hasFault(name string) *Rule {
	for i := range j.faults {
		if j.faults[i].Job == name {
			return &j.faults[i]
		}
	}
	return nil
}

// readJobRequest is the JSON body of CreateSPAsyncReadJob[WithMultiUrl] (nometadata or verbose).
type readJobRequest struct {
	URL         string   `json:"url"`
	URLs        []string `json:"urls"`
	ReadOptions *struct {
		IncludeVersions              bool    `json:"IncludeVersions"`
		IncludeSecurity              bool    `json:"IncludeSecurity"`
		IncludePermission            bool    `json:"IncludePermission"`
		IncludeDirectDescendantsOnly bool    `json:"IncludeDirectDescendantsOnly"`
		IncludeExtendedMetadata      bool    `json:"IncludeExtendedMetadata"`
		StartChangeToken             *string `json:"StartChangeToken"`
	} `json:"readOptions"`
	EncryptionOption *struct {
		AES256CBCKey string `json:"AES256CBCKey"`
	} `json:"encryptionOption"`
	ManifestURI string `json:"azureContainerManifestUri"`
	QueueURI    string `json:"azureQueueReportUri"`
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request, site tenant.Site, method string, multi bool) {
	var req readJobRequest
	if err := readBody(r, &req); err != nil {
		writeError(w, r, http.StatusBadRequest, errInvalidArg("The request body is not valid JSON."))
		return
	}
	j, e := s.newJob(r, site, &req, multi)
	if e != nil {
		s.log.Info("read job refused", "site", site.ServerRelativeURL, "reason", e.Message)
		writeError(w, r, http.StatusInternalServerError, *e)
		return
	}
	s.mu.Lock()
	s.jobs[j.id] = j
	s.mu.Unlock()
	s.emit(s.ctx, j, "JobQueued", "SiteId", site.ID, "DbId", dbID(site.ID), "TotalRetryCount", "0",
		"MigrationType", "AsyncRead", "MigrationDirection", "Export")
	s.log.Info("read job queued", "job", j.id, "urls", len(j.urls), "container", redact(j.containerURL))
	s.queue <- j
	writeObject(w, r, method, "SP.AsyncReadJobInfo", map[string]any{"JobId": j.id, "CurrentChangeToken": j.changeToken})
}

// newJob validates a create request the way SharePoint does and builds the job.
func (s *Server) newJob(r *http.Request, site tenant.Site, req *readJobRequest, multi bool) (*job, *spError) {
	urls := req.URLs
	if !multi {
		urls = nil
		if req.URL != "" {
			urls = []string{req.URL}
		}
	}
	switch {
	case len(urls) == 0 && multi:
		return nil, ptr(errInvalidArg("Value cannot be null. Parameter name: urls"))
	case len(urls) == 0:
		return nil, ptr(errInvalidArg("Value cannot be null. Parameter name: url"))
	case len(urls) > maxURLs:
		return nil, ptr(errInvalidArg("The number of urls (%d) exceeds the maximum of %d.", len(urls), maxURLs))
	case req.ManifestURI == "":
		return nil, ptr(errInvalidArg("Value cannot be null. Parameter name: azureContainerManifestUri"))
	}
	if err := checkContainerSAS(req.ManifestURI, time.Now()); err != nil {
		return nil, ptr(errInvalidArg("Invalid azureContainerManifestUri: %v", err))
	}
	if req.QueueURI != "" {
		if err := checkQueueSAS(req.QueueURI, time.Now()); err != nil {
			return nil, ptr(errInvalidArg("Invalid azureQueueReportUri: %v", err))
		}
	}
	j := &job{site: site, urls: urls, containerURL: req.ManifestURI, queueURL: req.QueueURI, state: stateQueued}
	j.siteURL = baseURL(r) + strings.TrimSuffix(site.ServerRelativeURL, "/")
	if o := req.ReadOptions; o != nil {
		j.opts = tenant.ReadOptions{
			IncludeVersions:              o.IncludeVersions,
			IncludeSecurity:              o.IncludeSecurity,
			IncludePermission:            o.IncludePermission,
			IncludeDirectDescendantsOnly: o.IncludeDirectDescendantsOnly,
			IncludeExtendedMetadata:      o.IncludeExtendedMetadata,
		}
		if o.StartChangeToken != nil {
			j.opts.StartChangeToken = *o.StartChangeToken
		}
	}
	if eo := req.EncryptionOption; eo != nil && eo.AES256CBCKey != "" {
		key, err := base64.StdEncoding.DecodeString(eo.AES256CBCKey)
		if err != nil || len(key) != 32 {
			return nil, ptr(errInvalidArg("Invalid encryptionOption: AES256CBCKey must be 32 bytes, base64."))
		}
		j.key = key
	}
	for _, u := range urls {
		t, err := s.cfg.Tenant.Resolve(serverRelative(u))
		switch {
		case errors.Is(err, tenant.ErrNotContainer):
			return nil, ptr(errInvalidArg("Failed to verify async read options on url %s. Only folder, document library, or list are valid object types to run async read.", u))
		case err != nil:
			return nil, ptr(errInvalidArg("Failed to verify async read options on url %s. Failed to determine object type of %s.", u, u))
		case t.SiteID != site.ID:
			return nil, ptr(errInvalidArg("Failed to verify async read options on url %s. The url is not in site %s.", u, site.ServerRelativeURL))
		}
		if len(j.targets) > 0 && t.WebID != j.targets[0].WebID {
			// SharePoint accepts the job and then fails it (sp-dev-docs#7222).
			j.crossWeb = true
		}
		j.targets = append(j.targets, t)
	}
	if j.opts.StartChangeToken != "" {
		if _, err := s.cfg.Tenant.Count(r.Context(), j.targets, j.opts); err != nil {
			if errors.Is(err, tenant.ErrChangeTokenExpired) || errors.Is(err, tenant.ErrBadChangeToken) {
				return nil, ptr(spError{Code: codeChangeTokenExpired, Type: "Microsoft.SharePoint.SPException",
					Message: "The changeToken refers to a time before the start of the current change log."})
			}
			return nil, ptr(errInvalidArg("Invalid StartChangeToken."))
		}
	}
	j.changeToken = s.cfg.Tenant.CurrentChangeToken(j.targets[0])
	j.id = newGUID()
	j.faults = s.faults.jobFaults()
	return j, nil
}

func ptr[T any](v T) *T { return &v }

// serverRelative turns an absolute URL into its server-relative, decoded path; a path stays as is.
func serverRelative(u string) string {
	if p, err := url.Parse(u); err == nil && p.Scheme != "" {
		return p.Path
	}
	if d, err := url.PathUnescape(u); err == nil {
		return d
	}
	return u
}

// baseURL is scheme://host of the request, as the client reached the simulator.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (Go 1.24+ guarantees it).
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// dbID is a stable content-database id for a site.
func dbID(siteID string) string { return correlationID(siteID, -1) }

func (s *Server) worker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.queue:
			s.run(j)
		}
	}
}

// run exports one job: events, package files into the container, JobEnd.
func (s *Server) run(j *job) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	j.mu.Lock()
	if j.canceled {
		j.mu.Unlock()
		return
	}
	j.cancel = cancel
	j.mu.Unlock()

	common := []string{"TotalRetryCount", "0", "MigrationType", "AsyncRead", "MigrationDirection", "Export"}
	if f := j.hasFault("postponed"); f != nil {
		delay := f.Delay
		if delay == 0 {
			delay = time.Second
		}
		s.emit(ctx, j, "JobPostponed", append([]string{"NextPickupTime", time.Now().UTC().Add(delay).Format(usTime),
			"SiteId", j.site.ID, "DbId", dbID(j.site.ID), "JobsInQueue", strconv.Itoa(len(s.queue) + 1)}, common...)...)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
	}
	j.mu.Lock()
	j.state = stateProcessing
	j.mu.Unlock()
	s.emit(ctx, j, "JobStart", append([]string{"SiteId", j.site.ID, "WebId", "00000000-0000-0000-0000-000000000000",
		"DBId", dbID(j.site.ID), "FarmId", correlationID("farm", 0), "ServerId", correlationID("server", 0),
		"SubscriptionId", correlationID("subscription", 0)}, common...)...)

	stats, err := s.export(ctx, j)
	switch {
	case j.isCanceled():
		s.emit(context.WithoutCancel(ctx), j, "JobCancelled", append([]string{"CancelledByUser", "True"}, common...)...)
	case err != nil:
		s.log.Warn("read job failed", "job", j.id, "err", err)
		code := strconv.Itoa(codeOperationCanceled)
		var fe fatalError
		if errors.As(err, &fe) {
			code = strconv.FormatInt(fe.code, 10)
		}
		s.emit(ctx, j, "JobFatalError", append(common, "ObjectType", "", "Url", "", "Id", "",
			"ErrorCode", code, "ErrorType", "Microsoft.SharePoint.SPException", "Message", err.Error())...)
	}
	s.emit(context.WithoutCancel(ctx), j, "JobEnd", append(stats.fields(), common...)...)
	j.mu.Lock()
	j.state = stateNone
	j.ended = true
	j.endedAt = s.cfg.Tenant.Now()
	if j.hasFault("expire-status") != nil {
		j.endedAt = j.endedAt.Add(-2 * s.cfg.StatusRetention)
	}
	j.gone = j.hasFault("not-found") != nil
	j.mu.Unlock()
	s.log.Info("read job ended", "job", j.id, "objects", stats.objects, "files", stats.files, "err", err)
}

func (j *job) isCanceled() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.canceled
}

// fatalError is a job failure with the SharePoint error code its JobFatalError carries.
type fatalError struct {
	code int64
	msg  string
}

func (e fatalError) Error() string { return e.msg }

// jobStats are the counters JobProgress and JobEnd report.
type jobStats struct {
	objects, files, expected int64
	errors, warnings         int64
	bytes                    int64
	byType                   map[tenant.ObjectType]int64
	started                  time.Time
}

func (st *jobStats) fields() []string {
	byType := map[string]map[string]string{}
	for t, n := range st.byType {
		byType[string(t)] = map[string]string{"Count": strconv.FormatInt(n, 10), "TotalTime": "0", "AccumulatedVersions": "0", "ObjectsWithVersions": "0"}
	}
	statsJSON, _ := json.Marshal(byType)
	return []string{
		"FilesCreated", strconv.FormatInt(st.files, 10),
		"BytesProcessed", strconv.FormatInt(st.bytes, 10),
		"ObjectsProcessed", strconv.FormatInt(st.objects, 10),
		"TotalExpectedSPObjects", strconv.FormatInt(st.expected, 10),
		"TotalErrors", strconv.FormatInt(st.errors, 10), "TotalWarnings", strconv.FormatInt(st.warnings, 10),
		"TotalDurationInMs", strconv.FormatInt(time.Since(st.started).Milliseconds(), 10),
		"ObjectsStatsByType", string(statsJSON),
	}
}

// export walks the job's targets into the package writer, at the configured rate.
func (s *Server) export(ctx context.Context, j *job) (*jobStats, error) {
	st := &jobStats{byType: map[tenant.ObjectType]int64{}, started: time.Now()}
	if j.crossWeb {
		return st, fatalError{code: -2147467261, msg: "Object reference not set to an instance of an object."}
	}
	expected, err := s.cfg.Tenant.Count(ctx, j.targets, j.opts)
	if err != nil {
		return st, fatalError{code: codeChangeTokenExpired, msg: err.Error()}
	}
	st.expected = expected
	sink, err := s.newBlobSink(j)
	if err != nil {
		return st, err
	}
	roots := make([]export.Root, len(j.targets))
	for i, t := range j.targets {
		roots[i] = export.Root{ID: t.ID, Type: string(t.Kind), ParentID: t.ParentID, URL: j.urls[i], WebID: t.WebID, WebURL: t.WebURL}
	}
	w, err := export.NewWriter(ctx, sink, export.Options{
		JobID:            j.id,
		SiteURL:          j.siteURL,
		Key:              j.key,
		MaxManifestBytes: s.cfg.MaxManifestBytes,
		ReadOptions:      j.opts,
		ChangeToken:      j.changeToken,
		Targets:          roots,
		FolderTotals:     s.cfg.ManifestFolderTotals,
		Buffer:           s.takeBuffer(),
	})
	if err != nil {
		return st, err
	}
	var lim *rate.Limiter
	if s.cfg.Rate > 0 {
		burst := max(1, int(s.cfg.Rate/10))
		lim = rate.NewLimiter(rate.Limit(s.cfg.Rate), burst)
	}
	fatal := j.hasFault("fatal")
	progress := func() {
		s.emit(ctx, j, "JobProgress", append(st.fields(), "TotalRetryCount", "0", "MigrationType", "AsyncRead", "MigrationDirection", "Export")...)
	}
	// A first JobProgress right away carries the estimate (TotalExpectedSPObjects) that progress
	// displays need; then one a second while the export runs.
	progress()
	lastProgress := time.Now()
	var principals []int
	err = s.cfg.Tenant.Walk(ctx, j.targets, j.opts, func(o *tenant.Object) error {
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return err
			}
		}
		if err := w.Add(o); err != nil {
			return err
		}
		s.objectIssues(ctx, j, o, st)
		if fatal != nil && st.objects >= expected/2 {
			return fatalError{code: codeOperationCanceled, msg: "Operation canceled (injected by spsim)."}
		}
		st.objects++
		st.byType[o.Type]++
		if o.Type == tenant.TypeFile {
			st.files++
			st.bytes += o.Size
		}
		for _, ra := range o.RoleAssignments {
			for _, a := range ra.Assignments {
				principals = append(principals, a.PrincipalID)
			}
		}
		if time.Since(lastProgress) > time.Second {
			lastProgress = time.Now()
			progress()
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	var users []tenant.User
	var groups []tenant.Group
	switch {
	case j.opts.IncludeSecurity:
		users, groups, _ = s.cfg.Tenant.Security(j.site.ID)
	case j.opts.IncludePermission:
		users, groups = s.cfg.Tenant.Principals(j.site.ID, principals)
	}
	err = w.Close(users, groups)
	s.keepBuffer(w.Buffer())
	return st, err
}

// takeBuffer returns the largest package buffer an earlier export left, or nil.
func (s *Server) takeBuffer() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.buffers)
	if n == 0 {
		return nil
	}
	b := s.buffers[n-1]
	s.buffers = s.buffers[:n-1]
	return b
}

// keepBuffer keeps b for a later export: the largest ones, one per worker, ordered by size.
func (s *Server) keepBuffer(b []byte) {
	if b == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.buffers, cap(b), func(e []byte, c int) int { return cmp.Compare(cap(e), c) })
	s.buffers = slices.Insert(s.buffers, i, b)
	if len(s.buffers) > s.cfg.Workers {
		s.buffers = slices.Delete(s.buffers, 0, 1)
	}
}

// issueCode is the ErrorCode of injected object issues without a code of their own: SharePoint's
// example JobError and JobWarning code (docs/amr-protocol.md §5.1).
const issueCode = -2147024816

// objectIssues emits the JobError and JobWarning events the job's "object-error" and
// "object-warning" faults ask for o, with the fields SharePoint documents for them.
func (s *Server) objectIssues(ctx context.Context, j *job, o *tenant.Object, st *jobStats) {
	objectType := ""
	switch {
	case o.Type == tenant.TypeFile:
		objectType = "File"
	case o.Type == tenant.TypeListItem && o.DocType == "":
		objectType = "ListItem"
	default:
		return
	}
	for _, kind := range [...]struct{ fault, event string }{{"object-error", "JobError"}, {"object-warning", "JobWarning"}} {
		f := j.hasFault(kind.fault)
		if f == nil || !strings.Contains(o.WebRelURL, f.Match) {
			continue
		}
		code, msg := f.Code, f.Message
		if code == 0 {
			code = issueCode
		}
		if msg == "" {
			msg = kind.event + " on " + o.WebRelURL + " (injected by spsim)"
		}
		if kind.event == "JobError" {
			st.errors++
		} else {
			st.warnings++
		}
		s.emit(ctx, j, kind.event, "TotalRetryCount", "0", "MigrationType", "AsyncRead", "MigrationDirection", "Export",
			"ObjectType", objectType, "Url", o.WebRelURL, "Id", o.ID, "ErrorCode", strconv.FormatInt(code, 10),
			"ErrorType", "Microsoft.SharePoint.SPException", "Message", msg)
	}
}
