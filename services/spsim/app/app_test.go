package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// env returns a Lookup reading only the given map.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, m *Main)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, m *Main) {
				if m.Listen != "127.0.0.1:8787" || m.Token != "spsim-dev-token" || m.Profile != "default" ||
					m.Rate != 400 || m.Workers != 4 || m.MaxManifestMiB != 25 || m.Admin || m.ManifestFolderTotals ||
					m.Storage.Account != "devstoreaccount1" || m.Storage.Key != "" || m.LogLevel != "info" {
					t.Errorf("defaults: %+v", m)
				}
			},
		},
		{
			name: "flags",
			args: []string{"-listen", "127.0.0.1:0", "-token", "t", "-profile", "small", "-seed", "7", "-rate", "0",
				"-workers", "2", "-max-manifest-mib", "1", "-admin", "-faults", "f.json", "-log-level", "debug", "-manifest-folder-totals"},
			check: func(t *testing.T, m *Main) {
				if m.Listen != "127.0.0.1:0" || m.Token != "t" || m.Profile != "small" || m.Seed != 7 || m.Rate != 0 ||
					m.Workers != 2 || m.MaxManifestMiB != 1 || !m.Admin || m.FaultsPath != "f.json" || m.LogLevel != "debug" ||
					!m.ManifestFolderTotals {
					t.Errorf("flags: %+v", m)
				}
			},
		},
		{
			name: "SPSIM_* environment fallbacks",
			env: map[string]string{"SPSIM_LISTEN": ":9", "SPSIM_TOKEN": "env-token", "SPSIM_PROFILE_FILE": "p.json",
				"SPSIM_MAX_MANIFEST_MIB": "3", "SPSIM_ADMIN": "true", "SPSIM_RATE": "12.5"},
			check: func(t *testing.T, m *Main) {
				if m.Listen != ":9" || m.Token != "env-token" || m.ProfilePath != "p.json" || m.MaxManifestMiB != 3 ||
					!m.Admin || m.Rate != 12.5 {
					t.Errorf("env: %+v", m)
				}
			},
		},
		{
			name: "command line beats environment",
			args: []string{"-token", "flag-token", "-workers", "8"},
			env:  map[string]string{"SPSIM_TOKEN": "env-token", "SPSIM_WORKERS": "1"},
			check: func(t *testing.T, m *Main) {
				if m.Token != "flag-token" || m.Workers != 8 {
					t.Errorf("precedence: token %q workers %d", m.Token, m.Workers)
				}
			},
		},
		{
			name: "storage key from the environment",
			args: []string{"-storage-blob-url", "http://127.0.0.1:10000/devstoreaccount1"},
			env:  map[string]string{"SPSIM_STORAGE_KEY": "c2VjcmV0", "SPSIM_STORAGE_ACCOUNT": "acct"},
			check: func(t *testing.T, m *Main) {
				if m.Storage.Key != "c2VjcmV0" || m.Storage.Account != "acct" || m.Storage.BlobURL != "http://127.0.0.1:10000/devstoreaccount1" {
					t.Errorf("storage: %+v", m.Storage)
				}
			},
		},
		{
			name:    "storage key is never a flag",
			args:    []string{"-storage-key", "c2VjcmV0"},
			wantErr: "flag provided but not defined",
		},
		{
			name:    "blob URL without a key",
			args:    []string{"-storage-blob-url", "http://127.0.0.1:10000/devstoreaccount1"},
			wantErr: "SPSIM_STORAGE_KEY",
		},
		{name: "bad flag value", args: []string{"-workers", "many"}, wantErr: "invalid value"},
		{name: "bad environment value", env: map[string]string{"SPSIM_SEED": "x"}, wantErr: "SPSIM_SEED"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMain()
			m.Lookup = env(tt.env)
			err := m.ParseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}

func TestRunConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "bad log level", args: []string{"-log-level", "loud"}, wantErr: "log level"},
		{name: "unknown profile", args: []string{"-profile", "huge"}, wantErr: "unknown profile"},
		{name: "missing profile file", args: []string{"-profile-file", "/nonexistent/profile.json"}, wantErr: "profile.json"},
		{name: "missing faults file", args: []string{"-profile", "small", "-faults", "/nonexistent/faults.json"}, wantErr: "faults.json"},
		{name: "bad listen address", args: []string{"-profile", "small", "-listen", "127.0.0.1:-1"}, wantErr: "listen"},
		{name: "destination not SRC=DST", args: []string{"-profile", "small", "-destination", "/sites/small"}, wantErr: "not SRC=DST"},
		{name: "destination of an unknown site", args: []string{"-profile", "small", "-destination", "/sites/x=/sites/y"}, wantErr: "/sites/x is not in the source profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMain()
			m.Lookup = env(nil)
			m.Log = io.Discard
			if err := m.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			err := m.Run(context.Background())
			if cerr := m.Close(); cerr != nil {
				t.Errorf("Close: %v", cerr)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRunServes starts the simulator on a loopback port, checks the REST surface answers (401
// without the bearer token, not 401 with it), then cancels and checks Run and Close return cleanly.
func TestRunServes(t *testing.T) {
	m := NewMain()
	m.Lookup = env(map[string]string{"SPSIM_TOKEN": "test-token"})
	m.Log = io.Discard
	if err := m.ParseFlags([]string{"-listen", "127.0.0.1:0", "-profile", "small", "-workers", "1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	deadline := time.Now().Add(10 * time.Second)
	for m.Addr() == nil {
		select {
		case err := <-done:
			t.Fatalf("Run returned before listening: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not start listening")
		}
		time.Sleep(10 * time.Millisecond)
	}
	url := "http://" + m.Addr().String() + "/sites/small/_api/web"

	tests := []struct {
		name    string
		token   string
		want401 bool
	}{
		{name: "no token", want401: true},
		{name: "wrong token", token: "nope", want401: true},
		{name: "right token", token: "test-token", want401: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			req.Header.Set("Accept", "application/json;odata=verbose")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if got := resp.StatusCode == http.StatusUnauthorized; got != tt.want401 {
				t.Errorf("GET %s: status %d, want 401: %v", url, resp.StatusCode, tt.want401)
			}
			if !tt.want401 && resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s with the token: status %d, want 200", url, resp.StatusCode)
			}
		})
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestExecuteExitCodes checks the exit codes main gets from svc.Execute: 2 for bad flags, 0 for
// -help, 1 for a failed run.
func TestExecuteExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStderr string
	}{
		{name: "bad flag value", args: []string{"-workers", "many"}, want: 2, wantStderr: "spsim: invalid value"},
		{name: "blob URL without key", args: []string{"-storage-blob-url", "http://127.0.0.1:1/a"}, want: 2, wantStderr: "spsim: -storage-blob-url needs SPSIM_STORAGE_KEY"},
		{name: "help", args: []string{"-help"}, want: 0},
		{name: "failed run", args: []string{"-log-level", "loud"}, want: 1, wantStderr: "spsim: log level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMain()
			m.Lookup = env(nil)
			m.Log = io.Discard
			var stderr strings.Builder
			if got := svc.Execute("spsim", m, tt.args, &stderr); got != tt.want {
				t.Errorf("exit code %d, want %d (stderr %q)", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// TestRunServesADestination: with -destination the simulator serves the copy under its new site
// URL, not the source's, and the admin API tells the seeded differences and the login mapping.
func TestRunServesADestination(t *testing.T) {
	m := NewMain()
	m.Lookup = env(map[string]string{"SPSIM_TOKEN": "test-token"})
	m.Log = io.Discard
	if err := m.ParseFlags([]string{"-listen", "127.0.0.1:0", "-profile", "small", "-workers", "1", "-admin",
		"-destination", "/sites/small=/sites/small-new", "-destination-differences", "1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); m.Addr() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not start listening")
		}
	}
	get := func(path string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Addr().String()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer test-token")
		req.Header.Set("Accept", "application/json;odata=verbose")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/sites/small-new/_api/web"); code != http.StatusOK {
		t.Errorf("destination site: HTTP %d", code)
	}
	if code, _ := get("/sites/small/_api/web"); code == http.StatusOK {
		t.Error("the source site is served too")
	}
	code, body := get("/_spsim/differences")
	var doc struct {
		Differences []tenant.Difference
		Logins      map[string]string
		Sites       map[string]string
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || code != http.StatusOK {
		t.Fatalf("differences: HTTP %d %v: %s", code, err, body)
	}
	if len(doc.Differences) != len(tenant.DifferenceKinds) || len(doc.Logins) == 0 || doc.Sites["/sites/small"] != "/sites/small-new" {
		t.Errorf("differences document %+v", doc)
	}
}
