package chaos

// This file is the fault proxy in front of Azurite's blob endpoint: the decryptor downloads
// manifests through it, and it answers Azure Storage's 503 ServerBusy during a storm, and always
// for the blobs of the jobs chosen to fail.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BlobProxy is a reverse proxy to a blob endpoint that injects 503 ServerBusy answers.
type BlobProxy struct {
	// URL is the proxy's blob endpoint, the target's with the proxy's host:
	// http://127.0.0.1:PORT/devstoreaccount1/.
	URL string

	// victim says whether the blobs of a job fail for good (cached per job; an error is asked
	// again at the next request).
	victim func(ctx context.Context, jobID string) (bool, error)
	// file, if set, is the only blob of a victim job that fails.
	file string

	storm      atomic.Bool
	stormed    atomic.Int64 // 503s of the storm
	persistent atomic.Int64 // 503s of victims' blobs
	undecided  atomic.Int64 // 503s while the victim lookup failed
	passed     atomic.Int64 // requests forwarded

	mu      sync.Mutex
	decided map[string]bool
	blobs   map[string]int // failed blob → 503s

	srv *http.Server
}

// StartBlobProxy listens on a free loopback port and forwards to target (a blob endpoint URL with
// its account path). victim and file choose the persistent failures (victim nil: none).
func StartBlobProxy(target string, victim func(ctx context.Context, jobID string) (bool, error), file string) (*BlobProxy, error) {
	tu, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("blob endpoint %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listener: %w", err)
	}
	p := &BlobProxy{victim: victim, file: file, decided: map[string]bool{}, blobs: map[string]int{}}
	u := *tu
	u.Host = ln.Addr().String()
	p.URL = u.String()
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(&url.URL{Scheme: tu.Scheme, Host: tu.Host}) // the path is the same on both sides
	}}
	p.srv = &http.Server{Handler: p.handler(rp, tu.Path), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// SetStorm starts or ends the storm: every request answers 503 while it lasts.
func (p *BlobProxy) SetStorm(on bool) { p.storm.Store(on) }

// Close stops the proxy.
func (p *BlobProxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.srv.Shutdown(ctx)
}

// ProxyStats counts what the proxy did.
type ProxyStats struct {
	// Stormed, Persistent and Undecided are the 503s of the storm, of the victims' blobs and of
	// requests whose job could not be looked up; Passed the requests forwarded.
	Stormed, Persistent, Undecided, Passed int64
	// Blobs are the victims' blobs that failed, with their 503 counts.
	Blobs map[string]int
	// Victims are the jobs whose blobs failed.
	Victims []string
}

// Stats returns the proxy's counts.
func (p *BlobProxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := ProxyStats{Stormed: p.stormed.Load(), Persistent: p.persistent.Load(), Undecided: p.undecided.Load(),
		Passed: p.passed.Load(), Blobs: map[string]int{}}
	for b, n := range p.blobs {
		s.Blobs[b] = n
	}
	for j, v := range p.decided {
		if v {
			s.Victims = append(s.Victims, j)
		}
	}
	return s
}

func (p *BlobProxy) handler(next http.Handler, accountPath string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.storm.Load() {
			p.stormed.Add(1)
			serverBusy(w)
			return
		}
		// <account>/<container>/<jobID>/<file>: a manifest blob of a job.
		rest := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(accountPath, "/")+"/")
		parts := strings.Split(rest, "/")
		if p.victim != nil && len(parts) == 3 && parts[1] != "" {
			fail, err := p.isVictim(r.Context(), parts[1])
			switch {
			case err != nil:
				p.undecided.Add(1)
				serverBusy(w)
				return
			case fail && (p.file == "" || strings.EqualFold(parts[2], p.file)):
				p.persistent.Add(1)
				p.mu.Lock()
				p.blobs[parts[1]+"/"+parts[2]]++
				p.mu.Unlock()
				serverBusy(w)
				return
			}
		}
		p.passed.Add(1)
		next.ServeHTTP(w, r)
	})
}

func (p *BlobProxy) isVictim(ctx context.Context, jobID string) (bool, error) {
	p.mu.Lock()
	v, ok := p.decided[jobID]
	p.mu.Unlock()
	if ok {
		return v, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := p.victim(ctx, jobID)
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.decided[jobID]; ok {
		return prev, nil
	}
	p.decided[jobID] = v
	return v, nil
}

// serverBusy answers as Azure Storage does when it throttles an account: 503 with the error code
// in a header and in an XML body.
func serverBusy(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-ms-error-code", "ServerBusy")
	h.Set("x-ms-version", "2025-01-05")
	h.Set("x-ms-request-id", fmt.Sprintf("chaos-%d", time.Now().UnixNano()))
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is busy.
RequestId:chaos
Time:%s</Message></Error>`, time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"))
}
