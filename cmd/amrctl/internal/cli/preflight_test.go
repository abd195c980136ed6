package cli_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/preflight"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// testJWT builds an unsigned JWT with claims: the checks only decode tokens (SharePoint verifies
// them), so no signature is needed.
func testJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + ".c2ln"
}

// simulator serves the small profile with token as the only accepted bearer token; it returns
// the site URL.
func simulator(t *testing.T, token string) string {
	t.Helper()
	tn, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	sim, err := server.New(server.Config{Tenant: tn, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	})
	return hs.URL + testenv.Site
}

func azurite(t *testing.T) *testenv.Azurite {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	az, err := testenv.StartAzurite(ctx, testenv.AzuriteOptions{InMemory: true})
	if errors.Is(err, testenv.ErrAzuriteNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = az.Close() })
	return az
}

// preflightResults runs preflight -o json and decodes its lines.
func preflightResults(t *testing.T, url string, args ...string) (map[string]preflight.Result, error) {
	t.Helper()
	out, err := amrctl(t, url, append([]string{"-o", "json", "preflight"}, args...)...)
	var rs []preflight.Result
	if jerr := json.Unmarshal([]byte(out), &rs); jerr != nil {
		t.Fatalf("preflight -o json: %v\n%s", jerr, out)
	}
	byCheck := map[string]preflight.Result{}
	for _, r := range rs {
		byCheck[r.Check] = r
	}
	return byCheck, err
}

// TestPreflight: against the simulator, Azurite and JetStream every check passes; then each
// mistake a user makes fails its check, says what is wrong and how to fix it, and exits 1.
func TestPreflight(t *testing.T) {
	js := testenv.StartJetStream(t)
	az := azurite(t)
	// The simulator listens on 127.0.0.1; a token's audience names the host without a port.
	good := map[string]any{"aud": "https://127.0.0.1", "roles": []string{"Sites.FullControl.All"}, "exp": time.Now().Add(time.Hour).Unix(), "appid": "app-1"}
	goodToken := testJWT(t, good)
	siteURL := simulator(t, goodToken)

	t.Setenv("AMR_SP_TOKEN", goodToken)
	t.Setenv("AMR_STORAGE_KEY", testenv.AzuriteKey)
	t.Setenv("AMR_KEK", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	storageArgs := []string{"--storage-blob-url", az.BlobURL, "--storage-account", testenv.AzuriteAccount,
		"--storage-queue-url", az.QueueURL, "--report-queue", "amr-events"}
	args := append([]string{"--site", siteURL}, storageArgs...)
	natsURL := js.Server.ClientURL()

	t.Run("all pass", func(t *testing.T) {
		rs, err := preflightResults(t, natsURL, args...)
		if err != nil {
			t.Fatalf("preflight: %v", err)
		}
		for _, check := range []string{"sharepoint credentials", "token app-only", "token permission", "token audience", "token expiry",
			"sharepoint call", "sharepoint clock", "manifest container", "report queue", "storage clock", "nats", "topology", "key-encryption key"} {
			if r, ok := rs[check]; !ok || r.Status != preflight.Pass {
				t.Errorf("%s: %+v, want pass", check, r)
			}
		}
		out, err := amrctl(t, natsURL, append([]string{"preflight"}, args...)...)
		if err != nil || !strings.Contains(out, "token permission") || strings.Contains(out, goodToken) || strings.Contains(out, testenv.AzuriteKey) {
			t.Errorf("table: %v\n%s", err, out)
		}
	})

	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		nats  string
		check string
		want  []string // in the detail or the fix
	}{
		{name: "wrong token", env: map[string]string{"AMR_SP_TOKEN": "not-the-token"}, check: "sharepoint call", want: []string{"401", "certificate"}},
		{name: "JWT without a Sites role", env: map[string]string{"AMR_SP_TOKEN": testJWT(t, map[string]any{"aud": good["aud"], "roles": []string{"User.Read.All"}, "exp": good["exp"]})},
			check: "token permission", want: []string{"User.Read.All", "Sites.Read.All", "admin consent"}},
		{name: "user token", env: map[string]string{"AMR_SP_TOKEN": testJWT(t, map[string]any{"aud": good["aud"], "scp": "AllSites.Read", "exp": good["exp"]})},
			check: "token app-only", want: []string{"delegated", "certificate"}},
		{name: "token for Graph", env: map[string]string{"AMR_SP_TOKEN": testJWT(t, map[string]any{"aud": "https://graph.microsoft.com", "roles": []string{"Sites.Read.All"}, "exp": good["exp"]})},
			check: "token audience", want: []string{"graph.microsoft.com", "/.default"}},
		{name: "expired token", env: map[string]string{"AMR_SP_TOKEN": testJWT(t, map[string]any{"aud": good["aud"], "roles": []string{"Sites.Read.All"}, "exp": time.Now().Add(-time.Hour).Unix()})},
			check: "token expiry", want: []string{"expired"}},
		{name: "unreachable storage", args: []string{"--storage-blob-url", "http://127.0.0.1:1/devstoreaccount1"}, check: "manifest container", want: []string{"unreachable", "--storage-blob-url"}},
		{name: "no storage key", env: map[string]string{"AMR_STORAGE_KEY": ""}, check: "storage account", want: []string{"AMR_STORAGE_KEY"}},
		{name: "no KEK", env: map[string]string{"AMR_KEK": ""}, check: "key-encryption key", want: []string{"openssl rand -base64 32"}},
		{name: "no topology", nats: "fresh", check: "topology", want: []string{"amrctl topology apply"}},
		{name: "no NATS", nats: "nats://127.0.0.1:1", check: "nats", want: []string{"--nats-url"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			url := natsURL
			switch tc.nats {
			case "":
			case "fresh":
				srv, err := testenv.StartNATS(testenv.NATSOptions{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = srv.Close() })
				url = srv.ClientURL()
			default:
				url = tc.nats
			}
			a := append(append([]string{}, args...), tc.args...)
			rs, err := preflightResults(t, url, a...)
			if !errors.Is(err, cli.ErrChecksFailed) || cli.ExitCode(err) != cli.ExitFailed {
				t.Fatalf("err = %v (exit %d), want failed checks (exit 1)", err, cli.ExitCode(err))
			}
			r := rs[tc.check]
			if r.Status != preflight.Fail {
				t.Fatalf("%s: %+v, want fail", tc.check, r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Detail+" "+r.Fix, w) {
					t.Errorf("%s: %q / %q lacks %q", tc.check, r.Detail, r.Fix, w)
				}
			}
		})
	}
}
