package cli_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// TestConnectLikeTheNATSCLI: amrctl reaches a NATS server that wants TLS with a client
// certificate and a user (password or nkey), with the settings from a nats CLI context, the
// environment or flags (flags over environment over context), and one in operator mode with a
// credentials file. A command gets as far as JetStream (topology verify: "missing") only when
// connected.
func TestConnectLikeTheNATSCLI(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	userKP, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userPub, _ := userKP.PublicKey()
	seed, _ := userKP.Seed()
	seedFile := write(t, dir, "user.nk", string(seed))

	tlsSrv := startServer(t, &server.Options{
		TLS: true, TLSVerify: true, TLSTimeout: 5,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		Users:     []*server.User{{Username: "ops", Password: "s3cret-pw"}},
		Nkeys:     []*server.NkeyUser{{Nkey: userPub}},
	})
	tlsURL := "tls://" + tlsSrv.Addr().String()

	xdg := t.TempDir()
	saveContext := func(name string, v map[string]string) {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(xdg, "nats", "context"), 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(xdg, "nats", "context"), name+".json", string(data))
	}
	tlsFiles := map[string]string{"ca": pki.caFile, "cert": pki.clientCert, "key": pki.clientKey}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	saveContext("prod", with(tlsFiles, "url", tlsURL, "user", "ops", "password", "s3cret-pw", "description", "production"))
	saveContext("tls-only", with(tlsFiles, "url", "nats://127.0.0.1:1"))
	saveContext("wrong-password", with(tlsFiles, "url", tlsURL, "user", "ops", "password", "not-it"))
	write(t, filepath.Join(xdg, "nats"), "context.txt", "prod\n")

	credsSrv, credsFile := startOperatorServer(t, dir)
	credsURL := credsSrv.ClientURL()

	connected := func(err error) bool { return errors.Is(err, topology.ErrMissing) }
	tests := []struct {
		name string
		env  map[string]string
		args []string
		ok   bool
		says string
	}{
		{"the selected context: TLS, user and password", nil, nil, true, ""},
		{"--context names one", map[string]string{"NATS_CONTEXT": "wrong-password"}, []string{"--context", "prod"}, true, ""},
		{"NATS_CONTEXT names one", map[string]string{"NATS_CONTEXT": "wrong-password"}, nil, false, "Authorization Violation"},
		{"env over context, flags over env", map[string]string{"NATS_URL": "nats://127.0.0.1:2"}, []string{"--context", "tls-only", "-s", tlsURL, "--nkey", seedFile}, true, ""},
		{"env over context", map[string]string{"NATS_URL": tlsURL, "NATS_NKEY": seedFile}, []string{"--context", "tls-only"}, true, ""},
		{"flags only", nil, []string{"--context", "tls-only", "--nats-url", tlsURL, "--nkey", seedFile, "--tlsca", pki.caFile, "--tlscert", pki.clientCert, "--tlskey", pki.clientKey}, true, ""},
		{"no client certificate", map[string]string{"XDG_CONFIG_HOME": t.TempDir()}, []string{"-s", tlsURL, "--nkey", seedFile, "--tlsca", pki.caFile}, false, "connect to " + tlsURL},
		{"half a client certificate", map[string]string{"XDG_CONFIG_HOME": t.TempDir()}, []string{"--tlscert", pki.clientCert}, false, "--tlscert and --tlskey go together"},
		{"a credentials file", map[string]string{"XDG_CONFIG_HOME": t.TempDir()}, []string{"-s", credsURL, "--creds", credsFile}, true, ""},
		{"no credentials file", map[string]string{"XDG_CONFIG_HOME": t.TempDir()}, []string{"-s", credsURL}, false, "Authorization Violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"AMR_NATS_URL", "NATS_URL", "NATS_CONTEXT", "NATS_NKEY", "AMR_NATS_USER", "NATS_USER", "NATS_CREDS"} {
				t.Setenv(k, "")
			}
			t.Setenv("XDG_CONFIG_HOME", xdg)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			root := cli.Root()
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(append([]string{"topology", "verify"}, tt.args...))
			err := root.ExecuteContext(t.Context())
			if connected(err) != tt.ok || !tt.ok && !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("topology verify: %v (connected: %v, want %v, saying %q)", err, connected(err), tt.ok, tt.says)
			}
			if err != nil && strings.Contains(err.Error(), "not-it") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startServer starts an embedded NATS server with JetStream on 127.0.0.1 with opts.
func startServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, t.TempDir(), true, true
	opts.JetStreamMaxStore = 1 << 30
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// startOperatorServer starts a server in operator mode (JWT accounts) and returns it with a
// user's credentials file, as `nsc generate creds` writes it.
func startOperatorServer(t *testing.T, dir string) (*server.Server, string) {
	t.Helper()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	sysKP, _ := nkeys.CreateAccount()
	sysPub, _ := sysKP.PublicKey()
	sysJWT, err := jwt.NewAccountClaims(sysPub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	for pub, j := range map[string]string{apub: ajwt, sysPub: sysJWT} {
		if err := resolver.Store(pub, j); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: resolver, SystemAccount: sysPub})
	return s, write(t, dir, "user.creds", string(creds))
}

// pki is a test CA with a server certificate for 127.0.0.1 and a client certificate, in files.
type pki struct {
	pool                          *x509.CertPool
	server                        tls.Certificate
	caFile, clientCert, clientKey string
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "amrctl test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	srvCert, srvKey := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cliCert, cliKey := issue(3, "amrctl", x509.ExtKeyUsageClientAuth, nil)
	p := pki{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	var err2 error
	if p.server, err2 = tls.X509KeyPair(srvCert, srvKey); err2 != nil {
		t.Fatal(err2)
	}
	p.caFile = write(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	p.clientCert = write(t, dir, "client.pem", string(cliCert))
	p.clientKey = write(t, dir, "client-key.pem", string(cliKey))
	return p
}
