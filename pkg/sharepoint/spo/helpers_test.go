package spo_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

const (
	testToken     = "tok-SECRET-bearer-0123456789"
	testUserAgent = "ISV|Contoso|amrpipe/1.0"
	jobID         = "3e280efa-78a3-4ba1-bac6-e447aa538ca5"
	// manifestSig and queueSig are the encoded sig values of the SAS URLs below.
	manifestSig = "bWFuaWZlc3Qtc2lnLVNFQ1JFVA%3D%3D"
	queueSig    = "cXVldWUtc2lnLVNFQ1JFVA%3D%3D"
	manifestSAS = "https://acct.blob.core.windows.net/manifests?sv=2026-12-06&sr=c&sp=rw&se=2099-01-01T00:00:00Z&sig=" + manifestSig
	queueSAS    = "https://acct.queue.core.windows.net/reports?sv=2020-02-10&sp=a&se=2099-01-01T00:00:00Z&sig=" + queueSig
)

// testKey is a recognisable AES key: "0123456789abcdef0123456789ABCDEF".
var testKey = []byte("0123456789abcdef0123456789ABCDEF")

// recorded is one request the fake SharePoint saw.
type recorded struct {
	Method string
	URI    string // RequestURI, as sent on the wire
	Path   string // decoded path
	Header http.Header
	Body   []byte
}

// fakeSP is an httptest server that records requests and answers with handler.
type fakeSP struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFake(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeSP {
	t.Helper()
	f := &fakeSP{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{Method: r.Method, URI: r.RequestURI, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		f.mu.Unlock()
		handler(w, r, body)
	}))
	t.Cleanup(f.Close)
	return f
}

// reply answers every request with status and body.
func reply(status int, body string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func (f *fakeSP) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func (f *fakeSP) site() string { return f.URL + "/sites/hr" }

func newClient(t *testing.T, observer func(spo.Observation)) *spo.Client {
	t.Helper()
	c, err := spo.New(spo.Options{Tokens: spo.StaticToken(testToken), UserAgent: testUserAgent, Observer: observer})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}
