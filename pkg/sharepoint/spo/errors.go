package spo

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// This file is the one catalogue of SharePoint errors amrpipe knows, in the manner of nats-server's
// error catalogue: each code has a constant, a sentinel for errors.Is and a description with its
// source. Add codes here, nowhere else. What an error means for a message (retry, wait, dead
// letter) is decided in one place outside this package: pkg/stage's Verdict.

// SharePoint error codes: the integer before the comma of an error body's "code"
// ("-2147213145, Microsoft.SharePoint.SPException"). Sources: docs/amr-protocol.md §5.
const (
	CodeChangeTokenExpired int64 = -2146232832 // 0x80131600
	CodeOperationCanceled  int64 = -2147213196 // 0x80042074
	CodeJobNotFound        int64 = -2147213145 // 0x800420A7
	CodeJobStatusExpired   int64 = -2147213146 // 0x800420A6
	CodeAccessDenied       int64 = -2147024891 // 0x80070005 E_ACCESSDENIED
	CodeInvalidArgument    int64 = -2147024809 // 0x80070057 E_INVALIDARG
)

// Sentinels matched with errors.Is against an *Error (and, for ErrInvalidRequest, against the
// client's own validation errors).
var (
	ErrChangeTokenExpired = errors.New("change token expired")
	ErrOperationCanceled  = errors.New("operation canceled")
	ErrJobNotFound        = errors.New("migration job not found")
	ErrJobStatusExpired   = errors.New("migration job status expired")
	ErrAccessDenied       = errors.New("access denied")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrThrottled          = errors.New("throttled")
	ErrUnauthorized       = errors.New("unauthorized")
	// ErrInvalidRequest marks a request the client refused to send (bad URL count, key size…).
	ErrInvalidRequest = errors.New("invalid request")
)

type codeEntry struct {
	code     int64
	sentinel error
	desc     string
}

// codes is the catalogue of documented SharePoint error codes.
var codes = []codeEntry{
	{CodeChangeTokenExpired, ErrChangeTokenExpired,
		"StartChangeToken is older than the 60-day change log, or unknown; plan a full read [AMR-REF]"},
	{CodeOperationCanceled, ErrOperationCanceled,
		"the job was cancelled (client request, or a change-token job over 10 minutes) [AMR-REF, EVENTS]"},
	{CodeJobNotFound, ErrJobNotFound,
		"GetMigrationJobProgress of an unknown job; HTTP 500 [PROGRESS] (status answers None for one)"},
	{CodeJobStatusExpired, ErrJobStatusExpired,
		"the job's status is older than the retention (< 5 days); HTTP 500 [PROGRESS]"},
	{CodeAccessDenied, ErrAccessDenied,
		"the app or user lacks the permission (E_ACCESSDENIED) [ISV-SMARTCOPY]"},
	{CodeInvalidArgument, ErrInvalidArgument,
		"SharePoint refused a parameter (bad URL, wrong object type, too many URLs, bad SAS) [rest-surface §3]"},
}

type statusEntry struct {
	status   int
	sentinel error
}

// statuses names the HTTP statuses that have a sentinel.
var statuses = []statusEntry{
	{http.StatusUnauthorized, ErrUnauthorized},
	{http.StatusForbidden, ErrAccessDenied},
	{http.StatusTooManyRequests, ErrThrottled},
	{http.StatusServiceUnavailable, ErrThrottled},
}

// Describe returns the catalogue's description of a SharePoint error code, or "".
func Describe(code int64) string {
	for _, c := range codes {
		if c.code == code {
			return c.desc
		}
	}
	return ""
}

// Error is a non-2xx answer from SharePoint. Its text names the call and the site, never a
// request body, SAS query string, key or token; Message has such values scrubbed.
type Error struct {
	Status     int           // HTTP status
	Code       int64         // SharePoint error code, 0 when the body had none
	Type       string        // exception type, e.g. "Microsoft.SharePoint.SPException"
	Message    string        // SharePoint's message, scrubbed of secrets
	RetryAfter time.Duration // the wait SharePoint asked for (Retry-After, else RateLimit-Reset), capped; 0 when neither was sent
	RateLimit  RateLimit     // RateLimit-* headers of the response
	Method     string        // SharePoint method, e.g. "CreateSPAsyncReadJob"
	Site       string        // site or web URL the call was made on
	op         string        // what the call does, in words
}

// Error names the call and site, then the status, code, type and scrubbed message.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Site != "" {
		op := e.op
		if op == "" {
			op = e.Method
		}
		fmt.Fprintf(&b, "%s on %s: ", op, e.Site)
	}
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	if e.Code != 0 {
		fmt.Fprintf(&b, " code %d", e.Code)
	}
	if e.Type != "" {
		fmt.Fprintf(&b, " (%s)", e.Type)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, "; retry after %s", e.RetryAfter)
	}
	return b.String()
}

// Is matches the sentinels of the catalogue by code and by HTTP status.
func (e *Error) Is(target error) bool {
	for _, s := range statuses {
		if s.sentinel != nil && s.sentinel == target && s.status == e.Status {
			return true
		}
	}
	for _, c := range codes {
		if c.sentinel == target && c.code == e.Code {
			return true
		}
	}
	return false
}

// Throttled reports a 429 or 503: SharePoint asks the caller to wait RetryAfter before calling
// this host again.
func (e *Error) Throttled() bool { return errors.Is(e, ErrThrottled) }

// TransportError is a failure to get a response at all (connection refused or reset, TLS,
// timeout, truncated body). It is always retryable. Err never carries the request URL.
type TransportError struct {
	Err error
}

// Error describes the network failure.
func (e *TransportError) Error() string { return "transport: " + e.Err.Error() }

// Unwrap returns the network error.
func (e *TransportError) Unwrap() error { return e.Err }

// TokenError is a failure to get a bearer token for a host.
type TokenError struct {
	Host string
	Err  error
}

// Error names the host whose token could not be had.
func (e *TokenError) Error() string { return "get token for " + e.Host + ": " + e.Err.Error() }

// Unwrap returns the token source's error.
func (e *TokenError) Unwrap() error { return e.Err }

// Refused reports Entra ID refusing the credentials (a 4xx answer of the token endpoint), as
// opposed to not reaching it or a 5xx, which may pass.
func (e *TokenError) Refused() bool {
	var afe *azidentity.AuthenticationFailedError
	return errors.As(e.Err, &afe) && afe.RawResponse != nil && afe.RawResponse.StatusCode >= 400 && afe.RawResponse.StatusCode < 500
}
