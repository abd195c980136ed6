package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// TestDashboardCommand: `amrctl dashboard` prints where it serves (as JSON with -o json), serves
// the page and its event stream there until interrupted, then ends without error; an address it
// cannot listen on fails at once.
func TestDashboardCommand(t *testing.T) {
	env := testenv.StartJetStream(t)
	tests := []struct {
		name string
		args []string
		url  func(t *testing.T, out *bufio.Reader) string
	}{
		{"json", []string{"-o", "json"}, func(t *testing.T, out *bufio.Reader) string {
			var v struct {
				URL string `json:"url"`
			}
			if err := json.NewDecoder(out).Decode(&v); err != nil {
				t.Fatalf("decode the output: %v", err)
			}
			return v.URL
		}},
		{"table", nil, func(t *testing.T, out *bufio.Reader) string {
			line, err := out.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "dashboard: http://127.0.0.1:") {
				t.Fatalf("first line %q: %v", line, err)
			}
			return strings.Fields(line)[1]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pr, pw := io.Pipe()
			root := cli.Root()
			root.SetOut(pw)
			root.SetErr(pw)
			root.SetArgs(append([]string{"--nats-url", env.Server.ClientURL(), "dashboard", "--listen", "127.0.0.1:0"}, tt.args...))
			done := make(chan error, 1)
			go func() {
				done <- root.ExecuteContext(ctx)
				_ = pw.Close()
			}()
			url := tt.url(t, bufio.NewReader(pr))
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			for _, path := range []string{"", "events"} {
				resp, err := http.Get(url + path)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s%s: %s", url, path, resp.Status)
				}
				if path == "events" {
					// The stream's first line says it started; the rest is the other tests'.
					line, err := bufio.NewReader(resp.Body).ReadString('\n')
					if err != nil || !strings.HasPrefix(line, "retry:") {
						t.Errorf("event stream starts %q: %v", line, err)
					}
				}
				_ = resp.Body.Close()
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("dashboard interrupted: %v, want no error", err)
			}
		})
	}
	t.Run("an address it cannot listen on", func(t *testing.T) {
		out, err := amrctl(t, env.Server.ClientURL(), "dashboard", "--listen", "256.0.0.1:1")
		if err == nil || cli.ExitCode(err) != cli.ExitFailed || !strings.Contains(err.Error(), "--listen 256.0.0.1:1") {
			t.Errorf("dashboard --listen 256.0.0.1:1 = %v (exit %d)\n%s", err, cli.ExitCode(err), out)
		}
	})
}
