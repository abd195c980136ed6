package spo_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// fakeCredential is an azcore.TokenCredential that records the scopes it was asked for.
type fakeCredential struct {
	mu     sync.Mutex
	scopes [][]string
	err    error
}

func (f *fakeCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scopes = append(f.scopes, opts.Scopes)
	if f.err != nil {
		return azcore.AccessToken{}, f.err
	}
	return azcore.AccessToken{Token: "cred-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestCredentialTokenSourceScope(t *testing.T) {
	cred := &fakeCredential{}
	ts := spo.NewCredentialTokenSource(cred)
	tok, err := ts.Token(context.Background(), "Contoso.SharePoint.com")
	if err != nil || tok != "cred-token" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	for _, bad := range []string{"", "contoso.sharepoint.com/sites/x", "user@host", "host:443"} {
		if _, err := ts.Token(context.Background(), bad); err == nil {
			t.Errorf("Token(%q) accepted", bad)
		}
	}
	// Through the client: the scope is built from the request's host, without port.
	sp := newFake(t, reply(200, `{"value":0}`))
	c, err := spo.New(spo.Options{Tokens: ts, UserAgent: testUserAgent})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetMigrationJobStatus(context.Background(), sp.site(), jobID); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"https://contoso.sharepoint.com/.default"}, {"https://127.0.0.1/.default"}}
	if !slices.EqualFunc(cred.scopes, want, slices.Equal) {
		t.Errorf("scopes = %v, want %v", cred.scopes, want)
	}
	if got := sp.requests()[0].Header.Get("Authorization"); got != "Bearer cred-token" {
		t.Errorf("Authorization = %q", got)
	}
}

func TestTokenErrorsClassified(t *testing.T) {
	refused := &azidentity.AuthenticationFailedError{RawResponse: &http.Response{
		StatusCode: 401, Status: "401 Unauthorized",
		Body: io.NopCloser(strings.NewReader(`{"error":"invalid_client"}`)),
	}}
	tests := []struct {
		name           string
		err            error
		refusedByEntra bool
	}{
		{"Entra ID refuses the certificate", refused, true},
		{"token endpoint unreachable", errors.New("dial tcp: lookup login.microsoftonline.com: no such host"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newFake(t, reply(200, `{"value":0}`))
			c, err := spo.New(spo.Options{Tokens: spo.NewCredentialTokenSource(&fakeCredential{err: tt.err}), UserAgent: testUserAgent})
			if err != nil {
				t.Fatal(err)
			}
			err = getStatus(c, sp.site())
			var te *spo.TokenError
			if !errors.As(err, &te) || te.Host != "127.0.0.1" {
				t.Fatalf("err = %v, want *spo.TokenError for 127.0.0.1", err)
			}
			if te.Refused() != tt.refusedByEntra {
				t.Errorf("Refused = %v, want %v", te.Refused(), tt.refusedByEntra)
			}
			if n := len(sp.requests()); n != 0 {
				t.Errorf("SharePoint saw %d requests without a token", n)
			}
		})
	}
}

// TestCertificateTokenSource loads a PEM certificate and builds the credential; no token is
// fetched (that needs Entra ID).
func TestCertificateTokenSource(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "amrpipe-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	path := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	certs, pk, err := spo.LoadCertificate(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || certs[0].Subject.CommonName != "amrpipe-test" || pk == nil {
		t.Fatalf("loaded %d certs, key %T", len(certs), pk)
	}
	if _, err := spo.NewCertificateTokenSource("00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002", certs, pk, nil); err != nil {
		t.Errorf("NewCertificateTokenSource: %v", err)
	}
	if _, _, err := spo.LoadCertificate(filepath.Join(t.TempDir(), "missing.pem"), nil); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := spo.NewCertificateTokenSource("tenant", "client", nil, pk, nil); err == nil {
		t.Error("credential without certificate accepted")
	}
}
