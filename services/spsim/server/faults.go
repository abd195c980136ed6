package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
)

// Rule is one injected fault. A rule with Status fails matching REST calls; a rule with Job set
// changes how the next matching jobs run.
type Rule struct {
	// Method is the REST method name ("CreateSPAsyncReadJob", "GetMigrationJobProgress", "lists",
	// ...) or "*" for every call. Job rules ignore it.
	Method string `json:"method,omitempty"`
	// Status is the HTTP status to answer: 429 and 503 (with RetryAfter), 500, 403, 401.
	Status int `json:"status,omitempty"`
	// RetryAfter is sent as the Retry-After header (seconds or an HTTP date).
	RetryAfter string `json:"retryAfter,omitempty"`
	// RateLimitReset, when set, is sent as RateLimit-Reset with RateLimit-Limit/Remaining.
	RateLimitReset string `json:"rateLimitReset,omitempty"`
	// Code and Message make the error body; defaults depend on Status.
	Code    int64  `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Times is how many calls (or jobs) the rule hits before it is used up; 0 means until cleared.
	Times int `json:"times,omitempty"`
	// Processed makes the call take effect first (a create call creates and queues its job) and
	// then replaces its answer with the fault: the client sees an error, or no answer at all, for a
	// call that succeeded, as when an answer is lost on its way back. Without Status and Drop the
	// real answer comes, after Delay: a slow call.
	Processed bool `json:"processed,omitempty"`
	// Drop closes the connection without an answer (Status is then not needed).
	Drop bool `json:"drop,omitempty"`

	// Job is a job-level fault: "postponed" (JobPostponed first, then the job runs), "fatal"
	// (JobFatalError after the first manifest part, then JobEnd), "slow-upload" (Delay before each
	// blob), "truncated-upload" (every manifest part is uploaded cut short, still announced by
	// FinishManifestFileUpload), "not-found" (the job vanishes: progress answers job-not-found),
	// "expire-status" (the status expires as soon as the job ends), "object-error" and
	// "object-warning" (SharePoint's per-object JobError or JobWarning for the objects Match selects).
	Job string `json:"job,omitempty"`
	// Match selects the objects of the "object-error" and "object-warning" job faults: every
	// exported file, and list item that is not a file's or folder's item, whose web-relative URL
	// contains it gets a JobError or JobWarning (ObjectType File or ListItem, Url, Id, ErrorCode
	// Code, ErrorType, Message: the fields docs/amr-protocol.md §2 lists), and JobEnd counts them in
	// TotalErrors and TotalWarnings. The job still exports the object and ends as it would.
	Match string `json:"match,omitempty"`
	// Delay is, for a job rule, its wait ("postponed", "slow-upload"); for a call rule, how long the
	// fault's answer (or the dropped connection) is held back, so a client may time out first.
	Delay time.Duration `json:"delay,omitempty"`
}

// LoadRules reads a JSON file holding {"rules":[...]}.
func LoadRules(path string) ([]Rule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read faults %s: %w", path, err)
	}
	var doc struct {
		Rules []Rule `json:"rules"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse faults %s: %w", path, err)
	}
	return doc.Rules, validateRules(doc.Rules)
}

func validateRules(rules []Rule) error {
	for i, r := range rules {
		switch {
		case r.Job != "":
			switch r.Job {
			case "postponed", "fatal", "slow-upload", "truncated-upload", "not-found", "expire-status":
			case "object-error", "object-warning":
				if r.Match == "" {
					return fmt.Errorf("fault %d: %s needs match (a part of the objects' URLs)", i, r.Job)
				}
			default:
				return fmt.Errorf("fault %d: unknown job fault %q", i, r.Job)
			}
		case r.Drop && r.Status != 0:
			return fmt.Errorf("fault %d: a dropped connection has no status", i)
		case r.Processed && !r.Drop && r.Status == 0 && r.Delay == 0:
			return fmt.Errorf("fault %d: a processed call with its real answer needs a delay", i)
		case !r.Drop && !(r.Processed && r.Status == 0) && (r.Status < 400 || r.Status > 599):
			return fmt.Errorf("fault %d: status %d is not an HTTP error", i, r.Status)
		case r.Method == "":
			return fmt.Errorf("fault %d: method is required (use \"*\" for every call)", i)
		case r.Delay < 0:
			return fmt.Errorf("fault %d: negative delay", i)
		}
	}
	return nil
}

type faultSet struct {
	mu    sync.Mutex
	rules []*liveRule
}

type liveRule struct {
	Rule
	left int // calls left; -1 unlimited
}

func newFaultSet(rules []Rule) *faultSet {
	f := &faultSet{}
	f.set(rules)
	return f
}

func (f *faultSet) set(rules []Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = f.rules[:0]
	for _, r := range rules {
		left := r.Times
		if left == 0 {
			left = -1
		}
		f.rules = append(f.rules, &liveRule{Rule: r, left: left})
	}
}

// match returns the HTTP fault for a call of method, consuming one use of it.
func (f *faultSet) match(method string) *Rule {
	return f.take(func(r *liveRule) bool {
		return r.Job == "" && (r.Method == "*" || r.Method == method)
	})
}

// jobFaults returns the job-level faults for a new job, consuming one use of each.
func (f *faultSet) jobFaults() []Rule {
	var out []Rule
	for {
		r := f.take(func(r *liveRule) bool {
			for _, o := range out {
				if o.Job == r.Job {
					return false
				}
			}
			return r.Job != ""
		})
		if r == nil {
			return out
		}
		out = append(out, *r)
	}
}

func (f *faultSet) take(pred func(*liveRule) bool) *Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if r.left == 0 || !pred(r) {
			continue
		}
		if r.left > 0 {
			r.left--
		}
		out := r.Rule
		if r.left == 0 {
			f.rules = append(f.rules[:i], f.rules[i+1:]...)
		}
		return &out
	}
	return nil
}

// answer holds the answer back for the rule's Delay, then drops the connection, writes the fault,
// or (a Processed rule without a status) the call's real answer. It returns early when the client
// went away.
func (r *Rule) answer(w http.ResponseWriter, req *http.Request, real *recorded) {
	if r.Delay > 0 {
		t := time.NewTimer(r.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-req.Context().Done():
			return
		}
	}
	switch {
	case r.Drop:
		// net/http closes the connection without an answer and logs nothing.
		panic(http.ErrAbortHandler)
	case r.Status == 0 && real != nil:
		real.replay(w)
	default:
		r.write(w, req)
	}
}

// recorded keeps the real answer of a Processed call.
type recorded struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func newRecorded() *recorded { return &recorded{h: http.Header{}, status: http.StatusOK} }

func (d *recorded) Header() http.Header         { return d.h }
func (d *recorded) Write(b []byte) (int, error) { return d.body.Write(b) }
func (d *recorded) WriteHeader(status int)      { d.status = status }

func (d *recorded) replay(w http.ResponseWriter) {
	for k, v := range d.h {
		w.Header()[k] = v
	}
	w.WriteHeader(d.status)
	_, _ = w.Write(d.body.Bytes()) // the client may be gone
}

// write answers the request with the fault. A 401 carries SharePoint's flat token error, a 429 or
// 503 only its status and headers (no public source shows the body of a throttled REST answer,
// docs/amr-protocol.md §7.4 row 19), unless the rule gives a code or message; any other status an
// OData error body, with the rule's code or a default of the simulator's own.
func (r *Rule) write(w http.ResponseWriter, req *http.Request) {
	if r.RetryAfter != "" {
		w.Header().Set("Retry-After", r.RetryAfter)
	}
	if r.RateLimitReset != "" {
		w.Header().Set("RateLimit-Limit", "1200")
		w.Header().Set("RateLimit-Remaining", "0")
		w.Header().Set("RateLimit-Reset", r.RateLimitReset)
	}
	custom := r.Code != 0 || r.Message != ""
	switch {
	case r.Status == http.StatusUnauthorized && !custom:
		writeUnauthorized(w, req)
		return
	case (r.Status == http.StatusTooManyRequests || r.Status == http.StatusServiceUnavailable) && !custom:
		w.WriteHeader(r.Status)
		return
	}
	e := spError{Code: r.Code, Type: "Microsoft.SharePoint.SPException", Message: r.Message}
	if e.Code == 0 {
		switch r.Status {
		case http.StatusForbidden, http.StatusUnauthorized:
			e.Code, e.Type = codeAccessDenied, "System.UnauthorizedAccessException"
		default:
			e.Code = -2146233088 // the simulator's own: SharePoint's code for such a failure is unknown
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(r.Status) + " (injected by spsim)"
	}
	if r.Code == codeJobNotFound && r.Message == "" {
		e.Message = "Job not found"
	}
	writeError(w, req, r.Status, e)
}
