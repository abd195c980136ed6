// Package sas reads Azure Storage shared-access-signature URLs, checks them against the rules
// SharePoint's Asynchronous Metadata Read (AMR) API applies, and redacts their signatures for logs.
//
// Nothing in this package ever returns or formats a signature except Signatures, whose job is to
// hand the values to code that scrubs them from text.
package sas

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Service says which Azure Storage service a SAS URL addresses.
type Service int

// Services. ServiceUnknown is what Parse reports for path-style (Azurite) URLs, whose host does
// not say; ParseContainer and ParseQueue set it from the caller's hint instead of guessing.
const (
	ServiceUnknown Service = iota
	ServiceBlob
	ServiceQueue
)

// String returns "blob", "queue" or "unknown".
func (s Service) String() string {
	switch s {
	case ServiceBlob:
		return "blob"
	case ServiceQueue:
		return "queue"
	default:
		return "unknown"
	}
}

// Info is what a SAS URL says about itself. It never holds the signature.
type Info struct {
	Scheme  string  // "https", or "http" for Azurite on loopback
	Host    string  // host[:port]
	Account string  // storage account; from the host, or the first path segment (path style)
	Name    string  // container or queue name
	Service Service // blob or queue
	// PathStyle is true for http://127.0.0.1:PORT/<account>/<name> (Azurite) URLs.
	PathStyle   bool
	Resource    string    // sr: "c" container, "b" blob, …; empty for queue and account SAS
	Permissions string    // sp, as given
	Protocol    string    // spr: "https" or "https,http"; empty means both
	Start       time.Time // st; zero when absent
	Expiry      time.Time // se; zero when absent
	Version     string    // sv
	// AccountSAS is true when the URL carries an account SAS (ss/srt) rather than a service SAS.
	AccountSAS bool
	// Signed is true when a sig parameter is present (its value is never kept).
	Signed bool
}

// Label names the container or queue for messages, e.g. "devstoreaccount1/manifests".
// It carries no part of the query string.
func (i Info) Label() string {
	switch {
	case i.Account != "" && i.Name != "":
		return i.Account + "/" + i.Name
	case i.Name != "":
		return i.Name
	default:
		return i.Host
	}
}

// Parse reads a SAS URL. The service is taken from a host like acct.blob.core.windows.net or
// acct.queue.core.windows.net; for path-style URLs it stays ServiceUnknown.
func Parse(rawURL string) (Info, error) {
	return parse(rawURL, ServiceUnknown)
}

// ParseContainer reads a blob-container SAS URL. For path-style URLs the caller's word sets the
// service; a host that names another service is an error.
func ParseContainer(rawURL string) (Info, error) {
	return parse(rawURL, ServiceBlob)
}

// ParseQueue reads a queue SAS URL; see ParseContainer.
func ParseQueue(rawURL string) (Info, error) {
	return parse(rawURL, ServiceQueue)
}

func parse(rawURL string, hint Service) (Info, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		// url.Parse quotes the input, signature included, so only its kind is kept.
		return Info{}, fmt.Errorf("%w: not a URL", ErrInvalidURL)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return Info{}, fmt.Errorf("%w: scheme %q, want https (or http for a local emulator)", ErrInvalidURL, u.Scheme)
	}
	if u.Host == "" {
		return Info{}, fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Info{}, fmt.Errorf("%w: malformed query string", ErrInvalidURL)
	}
	info := Info{
		Scheme:      u.Scheme,
		Host:        u.Host,
		Resource:    q.Get("sr"),
		Permissions: q.Get("sp"),
		Protocol:    q.Get("spr"),
		Version:     q.Get("sv"),
		AccountSAS:  q.Get("ss") != "" || q.Get("srt") != "",
		Signed:      q.Get("sig") != "",
	}
	if info.Start, err = parseTime(q.Get("st")); err != nil {
		return Info{}, fmt.Errorf("%w: start time (st): %v", ErrInvalidURL, err)
	}
	if info.Expiry, err = parseTime(q.Get("se")); err != nil {
		return Info{}, fmt.Errorf("%w: expiry time (se): %v", ErrInvalidURL, err)
	}
	segs := pathSegments(u.Path)
	hostSvc, hostAcct := serviceFromHost(u.Hostname())
	switch {
	case hostSvc != ServiceUnknown:
		info.Service, info.Account = hostSvc, hostAcct
	case len(segs) >= 2:
		// Azurite and other emulators: /<account>/<name>.
		info.PathStyle, info.Account, segs = true, segs[0], segs[1:]
	}
	if len(segs) != 1 {
		return Info{}, fmt.Errorf("%w: path must name exactly one container or queue, has %d segments", ErrInvalidURL, len(segs))
	}
	info.Name = segs[0]
	switch {
	case hint == ServiceUnknown:
	case info.Service == ServiceUnknown:
		info.Service = hint
	case info.Service != hint:
		return Info{}, fmt.Errorf("%w: %s is a %s URL, want a %s URL", ErrWrongService, info.Label(), info.Service, hint)
	}
	return info, nil
}

func pathSegments(p string) []string {
	var segs []string
	for s := range strings.SplitSeq(p, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

// serviceFromHost recognises <account>.<blob|queue>.<suffix> hosts (Azure public and sovereign
// clouds, Azurite's devstoreaccount1.blob.localhost form).
func serviceFromHost(host string) (Service, string) {
	if net.ParseIP(host) != nil {
		return ServiceUnknown, ""
	}
	labels := strings.Split(strings.ToLower(host), ".")
	if len(labels) < 3 {
		return ServiceUnknown, ""
	}
	switch labels[1] {
	case "blob":
		return ServiceBlob, labels[0]
	case "queue":
		return ServiceQueue, labels[0]
	}
	return ServiceUnknown, ""
}

// parseTime accepts the ISO 8601 forms Azure documents for st/se: full RFC 3339, without
// seconds, and date only.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not an ISO 8601 UTC time")
}
