package stage_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/registry"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// kek is a valid base64 KEK for the tests.
const kek = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// TestEveryStageReadsItsFlagsFromTheEnvironment: every flag of every stage falls back to its
// AMR_* variable, the command line wins, and secrets come from the environment only.
func TestEveryStageReadsItsFlagsFromTheEnvironment(t *testing.T) {
	for _, d := range registry.All() {
		t.Run(d.Name, func(t *testing.T) {
			vars := map[string]string{"AMR_DRAIN_TIMEOUT": "7s", "AMR_LOG_LEVEL": "debug", spo.TokenEnv: "sp-token",
				storage.KeyEnv: "storage-key", keywrap.EnvKEK: kek}
			m := stage.NewMain(d)
			m.Options.Lookup = env(vars)
			if err := m.ParseFlags([]string{"-log-level", "warn"}); err != nil {
				t.Fatal(err)
			}
			c := m.Config
			if c.Service.Name != d.Name || c.Service.DrainTimeout != 7*time.Second || c.Service.LogLevel != "warn" {
				t.Errorf("service config %+v", c.Service)
			}
			checkSecretsRead(t, d, m)
			// No secret is a flag.
			fs := d.FlagSet(&stage.Config{}, d.NewConfig())
			fs.VisitAll(func(f *flag.Flag) {
				for _, s := range d.Secrets() {
					if flagenv.EnvName(stage.EnvPrefix, f.Name) == s {
						t.Errorf("secret %s is also flag -%s", s, f.Name)
					}
				}
			})
			// Every stage-specific flag falls back too: set each to its own default through the
			// environment and parse again.
			own := map[string]string{}
			ofs := flag.NewFlagSet(d.Name, flag.ContinueOnError)
			d.NewConfig().RegisterFlags(ofs)
			ofs.VisitAll(func(f *flag.Flag) { own[flagenv.EnvName(stage.EnvPrefix, f.Name)] = f.DefValue })
			m = stage.NewMain(d)
			m.Options.Lookup = env(own)
			if err := m.ParseFlags(nil); err != nil {
				t.Fatalf("defaults through the environment: %v", err)
			}
		})
	}
}

// TestEveryStageReadsItsSecretsFromFiles: each secret may come from the file its _FILE variable
// names (Docker and Kubernetes secrets), no flag owns such a variable, and an unreadable file
// is an error naming it rather than a missing secret.
func TestEveryStageReadsItsSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{svc.NATSPasswordEnv: "nats-pw\n", spo.TokenEnv: "sp-token\n",
		storage.KeyEnv: "storage-key\n", keywrap.EnvKEK: kek + "\n"}
	vars := map[string]string{}
	for name, content := range files {
		path := filepath.Join(dir, strings.ToLower(name))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		vars[name+flagenv.FileSuffix] = path
	}
	for _, d := range registry.All() {
		t.Run(d.Name, func(t *testing.T) {
			d.FlagSet(&stage.Config{}, d.NewConfig()).VisitAll(func(f *flag.Flag) {
				for _, s := range d.Secrets() {
					if flagenv.EnvName(stage.EnvPrefix, f.Name) == s+flagenv.FileSuffix {
						t.Errorf("flag -%s owns %s, the file variable of secret %s", f.Name, s+flagenv.FileSuffix, s)
					}
				}
			})
			m := stage.NewMain(d)
			m.Options.Lookup = env(vars)
			if err := m.ParseFlags(nil); err != nil {
				t.Fatal(err)
			}
			c := m.Config
			if c.Service.NATSPassword != "nats-pw" {
				t.Errorf("NATS password %q from %s, want it without the line break", c.Service.NATSPassword, vars[svc.NATSPasswordEnv+flagenv.FileSuffix])
			}
			checkSecretsRead(t, d, m)

			missing := filepath.Join(dir, "absent")
			m = stage.NewMain(d)
			m.Options.Lookup = env(map[string]string{svc.NATSPasswordEnv + flagenv.FileSuffix: missing})
			if err := m.ParseFlags(nil); err == nil || !strings.Contains(err.Error(), missing) {
				t.Errorf("ParseFlags with an unreadable secret file: %v, want an error naming %s", err, missing)
			}
		})
	}
}

// TestEveryStageRunsAndSaysWhatItLacks runs each stage binary's program against an embedded
// JetStream: without what it needs it stops with a clear error; configured, it starts, becomes
// ready and stops cleanly when its context ends.
func TestEveryStageRunsAndSaysWhatItLacks(t *testing.T) {
	srv, err := testenv.StartNATS(testenv.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	account := map[string]string{"AMR_STORAGE_BLOB_URL": "http://127.0.0.1:1/devstoreaccount1", "AMR_STORAGE_ACCOUNT": "devstoreaccount1",
		storage.KeyEnv: testenv.AzuriteKey}
	with := func(sets ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, s := range sets {
			for k, v := range s {
				out[k] = v
			}
		}
		return out
	}
	sp := map[string]string{spo.TokenEnv: "t"}
	kekVar := map[string]string{keywrap.EnvKEK: kek}
	tests := []struct {
		stage   string
		vars    map[string]string
		args    []string
		wantErr error
	}{
		{"planner", nil, nil, spo.ErrNoCredentials},
		{"planner", sp, nil, nil},
		{"submitter", with(account), nil, spo.ErrNoCredentials},
		{"submitter", with(sp, account), nil, keywrap.ErrNoKEK},
		{"submitter", with(sp, kekVar), nil, storage.ErrNotConfigured},
		{"submitter", with(sp, account, kekVar), nil, nil},
		{"submitter", with(sp, account), []string{"-encrypt=false"}, nil},
		{"progress-relay", nil, nil, spo.ErrNoCredentials},
		{"progress-relay", sp, nil, nil},
		{"decryptor", kekVar, nil, storage.ErrNotConfigured},
		{"decryptor", with(account), nil, keywrap.ErrNoKEK},
		{"decryptor", with(account, kekVar), nil, nil},
		{"parser", nil, nil, nil},
	}
	for _, tt := range tests {
		name := tt.stage + " " + strings.Join(tt.args, " ")
		if tt.wantErr != nil {
			name += " without " + tt.wantErr.Error()
		}
		t.Run(name, func(t *testing.T) {
			d, err := registry.Lookup(tt.stage)
			if err != nil {
				t.Fatal(err)
			}
			m := stage.NewMain(d)
			m.Options = svc.Options{Lookup: env(tt.vars), LogOutput: io.Discard}
			args := append([]string{"-nats-url", srv.ClientURL(), "-http-addr", "127.0.0.1:0", "-log-level", "error", "-otel", "none", "-apply-topology"}, tt.args...)
			if err := m.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx) }()
			if tt.wantErr == nil {
				testenv.Eventually(t, 20*time.Second, "the stage ready", func() bool {
					rt := m.Runtime()
					return rt != nil && rt.Ready(context.Background()) == nil
				})
			}
			// A stage that lacks something stops by itself once it has ensured the topology and
			// found out: wait for that, however busy the machine. One that runs is stopped.
			wait := 500 * time.Millisecond
			if tt.wantErr != nil {
				wait = 30 * time.Second
			}
			select {
			case err = <-done:
			case <-time.After(wait):
				cancel()
				err = <-done
			}
			cancel()
			if cerr := m.Close(); cerr != nil {
				t.Error(cerr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// checkSecretsRead: a stage read the secrets its row says it uses, and no other (the values are
// the tests' "sp-token", "storage-key" and a KEK).
func checkSecretsRead(t *testing.T, d stage.Def, m *stage.Main) {
	t.Helper()
	uses := func(u stage.Uses) bool { return d.Uses&u != 0 }
	if got := m.Config.SharePoint.Token == "sp-token"; got != uses(stage.UsesSharePoint) {
		t.Errorf("SharePoint token read %v, uses SharePoint %v", got, uses(stage.UsesSharePoint))
	}
	if got := m.Config.Storage.Key == "storage-key"; got != uses(stage.UsesStorage) {
		t.Errorf("storage key read %v, uses storage %v", got, uses(stage.UsesStorage))
	}
	if got := m.KEK != nil; got != uses(stage.UsesKEK) {
		t.Errorf("KEK read %v, uses a KEK %v", got, uses(stage.UsesKEK))
	}
}
