package spo_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// secrets are every form in which the request's key, signatures and token could leak.
func secrets(t *testing.T) []string {
	t.Helper()
	out := []string{testToken, string(testKey), string(testKey[:31]), base64.StdEncoding.EncodeToString(testKey),
		base64.RawStdEncoding.EncodeToString(testKey), hex.EncodeToString(testKey), manifestSig, queueSig}
	for _, s := range []string{manifestSig, queueSig} {
		dec, err := url.QueryUnescape(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, dec, strings.TrimRight(dec, "="))
	}
	return out
}

func assertNoSecrets(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		for _, s := range secrets(t) {
			if strings.Contains(text, s) {
				t.Errorf("%s leaks %q:\n%s", what, s, text)
			}
		}
	}
}

// echo answers with status and an error body whose message repeats the whole request: body,
// Authorization header and query, the worst a server could do.
func echo(status int, shape string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, r *http.Request, body []byte) {
		text := string(body) + " auth=" + r.Header.Get("Authorization") + " uri=" + r.RequestURI
		quoted, _ := json.Marshal(text)
		if shape != "hijack" {
			w.WriteHeader(status)
		}
		switch shape {
		case "odata.error":
			fmt.Fprintf(w, `{"odata.error":{"code":"-2147024809, System.ArgumentException","message":{"lang":"en-US","value":%s}}}`, quoted)
		case "error":
			fmt.Fprintf(w, `{"error":{"code":"-2147024809, System.ArgumentException","message":%s}}`, quoted)
		case "code":
			fmt.Fprintf(w, `{"error":{"code":%s}}`, quoted)
		case "flat":
			fmt.Fprintf(w, `{"error":"invalid_request","error_description":%s}`, quoted)
		case "raw":
			_, _ = w.Write([]byte(text))
		case "job":
			fmt.Fprintf(w, `{"JobId":%s}`, quoted)
		case "hijack":
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				_ = conn.Close()
			}
		}
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	full := spo.ReadJobRequest{
		Options:       spo.ReadOptions{StartChangeToken: "1;3;x;1;2"},
		EncryptionKey: testKey, ManifestContainerURI: manifestSAS, QueueURI: queueSAS,
	}
	with := func(f func(*spo.ReadJobRequest)) spo.ReadJobRequest { r := full; f(&r); return r }
	tests := []struct {
		name    string
		handler func(http.ResponseWriter, *http.Request, []byte)
		req     spo.ReadJobRequest
	}{
		{"local: 31-byte key", nil, with(func(r *spo.ReadJobRequest) { r.EncryptionKey = testKey[:31] })},
		{"local: manifest SAS rwdl", nil, with(func(r *spo.ReadJobRequest) {
			r.ManifestContainerURI = strings.Replace(manifestSAS, "sp=rw", "sp=rwdl", 1)
		})},
		{"local: manifest SAS expired", nil, with(func(r *spo.ReadJobRequest) { r.ManifestContainerURI = strings.Replace(manifestSAS, "2099", "2000", 1) })},
		{"local: manifest SAS unparsable", nil, with(func(r *spo.ReadJobRequest) { r.ManifestContainerURI = manifestSAS + "%zz" })},
		{"local: manifest SAS not a URL", nil, with(func(r *spo.ReadJobRequest) { r.ManifestContainerURI = ":" + manifestSAS })},
		{"local: queue SAS read only", nil, with(func(r *spo.ReadJobRequest) { r.QueueURI = strings.Replace(queueSAS, "sp=a", "sp=r", 1) })},
		{"local: queue given as container", nil, with(func(r *spo.ReadJobRequest) { r.ManifestContainerURI = queueSAS })},
		{"500 odata.error echo", echo(500, "odata.error"), full},
		{"500 error echo, string message", echo(500, "error"), full},
		{"400 echo in code", echo(400, "code"), full},
		{"401 flat echo", echo(401, "flat"), full},
		{"403 echo", echo(403, "odata.error"), full},
		{"429 echo", echo(429, "error"), full},
		{"502 raw echo", echo(502, "raw"), full},
		{"transport: dropped", echo(0, "hijack"), full},
		{"200 undecodable echo", echo(200, "raw"), full},
		{"200 bad JobId echo", echo(200, "job"), full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handler := tt.handler
			if handler == nil {
				handler = func(http.ResponseWriter, *http.Request, []byte) { t.Error("request sent") }
			}
			sp := newFake(t, handler)
			for _, multi := range []bool{false, true} {
				var err error
				c := newClient(t, nil)
				if multi {
					_, err = c.CreateSPAsyncReadJobWithMultiUrl(context.Background(), sp.site(), []string{sp.site() + "/Lib"}, tt.req)
				} else {
					req := tt.req
					req.URL = sp.site() + "/Lib"
					_, err = c.CreateSPAsyncReadJob(context.Background(), sp.site(), req)
				}
				if err == nil {
					t.Fatal("no error")
				}
				assertNoSecrets(t, "error", err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
				if !strings.HasPrefix(err.Error(), "create ") || !strings.Contains(err.Error(), " on "+sp.site()+": ") {
					t.Errorf("error %q does not name the call and site", err)
				}
			}
		})
	}
}

func TestRedactedFormatting(t *testing.T) {
	req := spo.ReadJobRequest{URL: "https://x/sites/a/Lib", EncryptionKey: testKey, ManifestContainerURI: manifestSAS, QueueURI: queueSAS}
	cont := spo.Containers{DataContainerURI: manifestSAS, MetadataContainerURI: queueSAS, EncryptionKey: testKey}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("submit", "req", req, "containers", cont)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("submit", "req", req, "containers", cont)
	assertNoSecrets(t, "formatting", fmt.Sprint(req), fmt.Sprintf("%+v", req), fmt.Sprint(cont), fmt.Sprintf("%+v", cont), logs.String())
	if !strings.Contains(logs.String(), "acct.blob.core.windows.net/manifests") {
		t.Errorf("log lost the container name: %s", logs.String())
	}
}
