package spo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

const (
	// maxResponseBytes bounds what one answer may hold (a progress page with thousands of events
	// is a few MB).
	maxResponseBytes = 64 << 20
	// maxMessageBytes bounds SharePoint's error message kept in an *Error.
	maxMessageBytes = 1024
	// maxPages bounds how many continuation links a collection call follows.
	maxPages  = 1000
	odataJSON = "application/json;odata=nometadata"
	// odataVerbose is what GetMigrationJobProgress's documentation lists as its required Accept
	// header (docs/amr-protocol.md §1.4, §7.4 row 9).
	odataVerbose = "application/json;odata=verbose"
)

// Options configures New.
type Options struct {
	// HTTPClient sends the requests. Nil: a client with a 2-minute timeout. Callers should still
	// bound each call with a context deadline.
	HTTPClient *http.Client
	// Tokens supplies bearer tokens per host. Required.
	Tokens TokenSource
	// UserAgent decorates every request as SharePoint asks of migration tools:
	// "ISV|Company|App/Version" (or "NONISV|…" for in-house tools). Required.
	UserAgent string
	// Observer, if set, is called after every response SharePoint sent (not after transport
	// failures), so callers can slow down before throttling starts. It runs on the calling
	// goroutine and must be quick.
	Observer func(Observation)
	// MaxRetryAfter caps the wait a Retry-After may ask for (DefaultMaxRetryAfter when zero): a
	// header of years, or of more seconds than a time.Duration holds, must not stop a tenant's
	// work for good. A capped wait is flagged (Observation.RetryAfterCapped).
	MaxRetryAfter time.Duration
}

// DefaultMaxRetryAfter is Options.MaxRetryAfter's default.
const DefaultMaxRetryAfter = time.Hour

// Observation describes one response.
type Observation struct {
	Host       string        // host of the request, without port
	Method     string        // SharePoint method, e.g. "GetMigrationJobProgress"
	Status     int           // HTTP status
	RateLimit  RateLimit     // RateLimit-* headers
	RetryAfter time.Duration // the wait SharePoint asked for: Retry-After (RateLimit-Reset on an error without one), capped
	// RetryAfterCapped says SharePoint asked for longer than Options.MaxRetryAfter.
	RetryAfterCapped bool
	Duration         time.Duration // from sending the request to reading the whole body
}

// Client calls SharePoint Online's REST API. It makes one HTTP attempt per call (plus continuation
// pages of a collection, and the documented fallbacks of FolderTotals and Subfolders for fields a
// tenant does not have): retries belong to the caller, which shares a throttling budget per host
// across replicas. A Client is safe for concurrent use.
type Client struct {
	http          *http.Client
	tokens        TokenSource
	userAgent     string
	observe       func(Observation)
	maxRetryAfter time.Duration
	// noListingMetrics holds the hosts (lower case) that refused a subfolder listing with
	// StorageMetrics: Subfolders lists their folders without it.
	noListingMetrics sync.Map
}

// userAgentRE is SharePoint's decoration: ISV|CompanyName|AppName/Version.
var userAgentRE = regexp.MustCompile(`^(?:ISV|NONISV)\|[^|\x00-\x1f\x7f]+\|[^|/\x00-\x1f\x7f]+/[^|\s\x00-\x1f\x7f]+$`)

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	if opts.Tokens == nil {
		return nil, errors.New("spo: Options.Tokens is required")
	}
	if !userAgentRE.MatchString(opts.UserAgent) {
		return nil, fmt.Errorf("spo: user agent %q is not of the form ISV|Company|App/Version (or NONISV|…)", opts.UserAgent)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	maxWait := opts.MaxRetryAfter
	if maxWait <= 0 {
		maxWait = DefaultMaxRetryAfter
	}
	return &Client{http: hc, tokens: opts.Tokens, userAgent: opts.UserAgent, observe: opts.Observer, maxRetryAfter: maxWait}, nil
}

// call is one request: what it is for (for error text), where it goes, and which secrets its
// answer must never echo.
type call struct {
	method  string // SharePoint method name
	op      string // "create read job"
	site    string // normalised site or web URL, safe to print
	verb    string // HTTP method
	url     string
	body    any    // nil: no body
	accept  string // Accept header; "" is odataJSON
	secrets []string
}

// fail wraps a local or transport error with the call's op and site.
func (cl *call) fail(err error) error {
	return fmt.Errorf("%s on %s: %w", cl.op, cl.site, err)
}

// invalid is a request the client refuses to send.
func (cl *call) invalid(format string, args ...any) error {
	return cl.fail(fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidRequest))
}

// refusal marks an error as a request the client refuses to send (errors.Is ErrInvalidRequest)
// without changing its text.
type refusal struct{ error }

func (r refusal) Unwrap() error        { return r.error }
func (r refusal) Is(target error) bool { return target == ErrInvalidRequest }

// newCall validates base (a site or web URL) and starts a call on it.
func newCall(method, op, base string) (*call, error) {
	cl := &call{method: method, op: op, site: sas.Redact(base)}
	norm, err := normaliseBase(base)
	if err != nil {
		return nil, cl.invalid("%v", err)
	}
	cl.site = norm
	return cl, nil
}

// normaliseBase accepts an absolute http(s) URL without query, fragment or credentials, and
// returns it without a trailing slash.
func normaliseBase(base string) (string, error) {
	u, err := url.Parse(base)
	switch {
	case err != nil:
		return "", errors.New("site URL does not parse")
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return "", errors.New("site URL must be absolute http(s)")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", errors.New("site URL must not carry a query, fragment or credentials")
	}
	return strings.TrimRight(base, "/"), nil
}

// do sends the call and returns the body of a 2xx answer. Any other answer is an *Error.
func (c *Client) do(ctx context.Context, cl *call) ([]byte, error) {
	var body io.Reader
	if cl.body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // keep SAS URLs' '&' readable; JSON stays valid
		if err := enc.Encode(cl.body); err != nil {
			return nil, cl.fail(fmt.Errorf("encode request: %w", err))
		}
		body = &buf
	}
	req, err := http.NewRequestWithContext(ctx, cl.verb, cl.url, body)
	if err != nil {
		return nil, cl.fail(errors.New("build request: invalid URL"))
	}
	ctx, span := startCallSpan(ctx, cl, req.URL)
	req = req.WithContext(ctx)
	data, status, err := c.send(ctx, cl, req, body != nil)
	endCallSpan(span, status, err)
	return data, err
}

// send makes the call's one HTTP attempt; status is SharePoint's answer's (0 without one).
func (c *Client) send(ctx context.Context, cl *call, req *http.Request, hasBody bool) (data []byte, status int, err error) {
	host := req.URL.Hostname()
	token, err := c.tokens.Token(ctx, host)
	if err != nil {
		return nil, 0, cl.fail(&TokenError{Host: host, Err: err})
	}
	cl.secrets = append(cl.secrets, token)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", c.userAgent)
	accept := cl.accept
	if accept == "" {
		accept = odataJSON
	}
	req.Header.Set("Accept", accept)
	if hasBody {
		req.Header.Set("Content-Type", odataJSON)
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, cl.fail(transportError(ctx, err))
	}
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	closeErr := resp.Body.Close()
	dur := time.Since(start)

	rl := parseRateLimit(resp.Header)
	wait, given := parseRetryAfter(resp.Header, time.Now())
	if !given && resp.StatusCode >= 300 {
		// An error without Retry-After: RateLimit-Reset is the wait SharePoint gave.
		wait = rl.Reset
	}
	capped := wait > c.maxRetryAfter
	if capped {
		wait = c.maxRetryAfter
	}
	if c.observe != nil {
		c.observe(Observation{Host: host, Method: cl.method, Status: resp.StatusCode, RateLimit: rl, RetryAfter: wait,
			RetryAfterCapped: capped, Duration: dur})
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		code, typ, msg := parseErrorBody(data)
		return nil, resp.StatusCode, &Error{
			Status: resp.StatusCode, Code: code, Type: scrub(typ, cl.secrets), Message: scrub(msg, cl.secrets),
			RetryAfter: wait, RateLimit: rl, Method: cl.method, Site: cl.site, op: cl.op,
		}
	}
	if readErr != nil {
		return nil, resp.StatusCode, cl.fail(transportError(ctx, readErr))
	}
	if closeErr != nil {
		return nil, resp.StatusCode, cl.fail(transportError(ctx, closeErr))
	}
	if len(data) > maxResponseBytes {
		return nil, resp.StatusCode, cl.fail(fmt.Errorf("response larger than %d bytes", maxResponseBytes))
	}
	return data, resp.StatusCode, nil
}

// transportError strips the request URL from a client error (it is not secret, but error text
// stays predictable) and keeps the context's own error when the caller gave up.
func transportError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &TransportError{Err: err}
}

// scrub removes the call's secrets from text SharePoint sent back, then anything that looks
// like a signature, and bounds its length.
func scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 6 {
			s = strings.ReplaceAll(s, sec, sas.Redacted)
		}
	}
	s = sas.Redact(s)
	if len(s) > maxMessageBytes {
		s = strings.ToValidUTF8(s[:maxMessageBytes], "") + "…"
	}
	return s
}

// get fetches one object.
func (c *Client) get(ctx context.Context, cl *call, v any) error {
	data, err := c.do(ctx, cl)
	if err != nil {
		return err
	}
	raw, _, err := payload(data, cl.method)
	if err == nil {
		err = decodeInto(raw, cl.method, v)
	}
	if err != nil {
		return cl.fail(err)
	}
	return nil
}

// getAll fetches a collection, following continuation links on the same host.
func getAll[T any](ctx context.Context, c *Client, cl *call) ([]T, error) {
	first, err := url.Parse(cl.url)
	if err != nil {
		return nil, cl.fail(errors.New("build request: invalid URL"))
	}
	var all []T
	for page := 0; ; page++ {
		data, err := c.do(ctx, cl)
		if err != nil {
			return nil, err
		}
		raw, next, err := payload(data, cl.method)
		var items []T
		if err == nil {
			err = decodeInto(raw, cl.method, &items)
		}
		if err != nil {
			return nil, cl.fail(err)
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		nu, err := first.Parse(next)
		if err != nil || nu.Scheme != first.Scheme || nu.Host != first.Host {
			// The bearer token must never travel to another host.
			return nil, cl.fail(errors.New("continuation link points to another host"))
		}
		if page+1 >= maxPages {
			return nil, cl.fail(fmt.Errorf("more than %d pages", maxPages))
		}
		cl.url = nu.String()
	}
}
