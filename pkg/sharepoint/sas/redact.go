package sas

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Redacted replaces a secret value.
const Redacted = "REDACTED"

// secretKeys are query parameters whose value is a credential: SAS signatures and the usual
// token and key parameters. Matching is case-insensitive.
const secretKeys = `sig|signature|x-ms-signature|x-amz-signature|x-goog-signature|token|access_token|` +
	`refresh_token|id_token|client_secret|key|apikey|api-key|api_key|password|secret`

var (
	// plainRE matches key=value after a query or text boundary; the value ends at a delimiter.
	plainRE = regexp.MustCompile(`(?i)((?:^|[?&;\s"'(]|\\u0026)(?:` + secretKeys + `)=)[^&#\s"'<>)\\]*`)
	// escapedRE matches the same inside a percent-encoded URL (…%26sig%3Dvalue%26…).
	escapedRE = regexp.MustCompile(`(?i)((?:%3F|%26)(?:` + secretKeys + `)%3D)(?:[^%&#\s"'<>]|%(?:[013-9a-f][0-9a-f]|2[0-57-9a-f]))*`)
	// userinfoRE matches a password in scheme://user:password@host.
	userinfoRE = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*@`)
)

// Redact returns s with SAS signatures and other credential-like query values replaced by
// REDACTED, and URL passwords too. It works on a bare URL or on any text that contains URLs
// (log lines, echoed request bodies), and leaves everything else byte for byte.
func Redact(s string) string {
	s = plainRE.ReplaceAllString(s, "${1}"+Redacted)
	s = escapedRE.ReplaceAllString(s, "${1}"+Redacted)
	return userinfoRE.ReplaceAllString(s, "${1}"+Redacted+"@")
}

// Signatures returns the sig values of rawURL in every form they may be echoed in (as
// written, decoded, re-encoded), for code that must scrub them from text such as server error
// messages. It returns nil when rawURL has no signature or is not a URL.
func Signatures(rawURL string) []string {
	_, rawQuery, ok := strings.Cut(rawURL, "?")
	if !ok {
		return nil
	}
	var out []string
	add := func(v string) {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for part := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		if !strings.EqualFold(k, "sig") {
			continue
		}
		add(v)
		if dec, err := url.QueryUnescape(v); err == nil {
			add(dec)
			add(url.QueryEscape(dec))
			add(url.PathEscape(dec))
		}
	}
	return out
}

// RedactError returns err with its text redacted (Redact) and its chain kept, so that callers
// can still match its types and sentinels (errors.As, errors.Is) while nothing prints a secret.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{text: Redact(err.Error()), err: err}
}

type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }
