package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/pipeline/buildinfo"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// TestExitCodes: each documented exit status (docs/amrctl.md) for what causes it.
func TestExitCodes(t *testing.T) {
	env := testenv.StartJetStream(t)
	url := env.Server.ClientURL()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		url  string
		args []string
		want int
		says string
	}{
		{"version", nil, url, []string{"version"}, cli.ExitOK, ""},
		{"unknown command", nil, url, []string{"topolgy"}, cli.ExitUsage, `unknown command "topolgy" for "amrctl"; did you mean topology?`},
		{"unknown subcommand of a group", nil, url, []string{"plan", "sumbit"}, cli.ExitUsage, `unknown command "sumbit" for "amrctl plan"`},
		{"unknown flag", nil, url, []string{"jobs", "--frob"}, cli.ExitUsage, "unknown flag: --frob"},
		{"missing argument", nil, url, []string{"plan", "status"}, cli.ExitUsage, "accepts 1 arg(s), received 0"},
		{"argument to a command that takes none", nil, url, []string{"jobs", "everything"}, cli.ExitUsage, `unknown command "everything" for "amrctl jobs"`},
		{"bad output format", nil, url, []string{"jobs", "-o", "yaml"}, cli.ExitUsage, `-o "yaml"`},
		{"unknown plan", nil, url, []string{"plan", "status", "nobody-planned-this"}, cli.ExitNotFound, "nobody-planned-this"},
		{"unknown nats context", nil, url, []string{"jobs", "--context", "nowhere"}, cli.ExitNotFound, `no context "nowhere"`},
		{"no server", nil, "nats://127.0.0.1:1", []string{"jobs"}, cli.ExitFailed, "connect to nats://127.0.0.1:1"},
		{"interrupted", cancelled, url, []string{"tail", "--follow"}, cli.ExitInterrupted, ""},
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			root := cli.Root()
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(append([]string{"--nats-url", tt.url}, tt.args...))
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := root.ExecuteContext(ctx)
			if got := cli.ExitCode(err); got != tt.want || err != nil && !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("exit %d (%v), want %d saying %q\n%s", got, err, tt.want, tt.says, out.String())
			}
		})
	}
	if got := cli.ExitCode(fmt.Errorf("validate: %w", cli.ErrDifferences)); got != cli.ExitDifferences {
		t.Errorf("differences: exit %d, want %d", got, cli.ExitDifferences)
	}
	if got := cli.ExitCode(errors.Join(errors.New("x"), context.Canceled)); got != cli.ExitInterrupted {
		t.Errorf("interrupted: exit %d", got)
	}
}

// TestVersion: `amrctl version -o json` gives the build's fields; the table form is --version's.
func TestVersion(t *testing.T) {
	out, err := amrctl(t, "", "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Version   string `json:"version"`
		Revision  string `json:"revision"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	bi := buildinfo.Read()
	if v.Version != bi.Version || v.Revision != bi.Revision || v.GoVersion != bi.GoVersion {
		t.Errorf("version -o json = %+v, want %+v", v, bi)
	}
	table, err := amrctl(t, "", "version")
	if err != nil {
		t.Fatal(err)
	}
	flag, err := amrctl(t, "", "--version")
	if err != nil || table != flag || !strings.HasPrefix(table, "amrctl ") {
		t.Errorf("version %q, --version %q (%v): want the same line", table, flag, err)
	}
}
