package spo

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TokenSource returns a bearer token for a SharePoint host (no port), e.g.
// "contoso.sharepoint.com". Implementations cache tokens; the Client asks on every call.
type TokenSource interface {
	Token(ctx context.Context, host string) (string, error)
}

// StaticToken is a fixed bearer token, for the simulator and tests.
type StaticToken string

// Token returns the token whatever the host.
func (t StaticToken) Token(context.Context, string) (string, error) {
	if t == "" {
		return "", errors.New("static token is empty")
	}
	return string(t), nil
}

// CredentialTokenSource gets app-only tokens from an azcore credential with the scope
// https://{host}/.default, which SharePoint requires (the audience is the tenant's host). The
// credential caches tokens per scope, hence per host.
type CredentialTokenSource struct {
	cred azcore.TokenCredential
}

// NewCredentialTokenSource wraps any azcore credential (certificate, workload or managed
// identity).
func NewCredentialTokenSource(cred azcore.TokenCredential) *CredentialTokenSource {
	return &CredentialTokenSource{cred: cred}
}

// NewCertificateTokenSource authenticates as an Entra ID application with a certificate, the
// only app-only credential SharePoint Online accepts (client secrets get Access Denied).
// Load certs and key with LoadCertificate. opts may be nil.
func NewCertificateTokenSource(tenantID, clientID string, certs []*x509.Certificate, key crypto.PrivateKey, opts *azidentity.ClientCertificateCredentialOptions) (*CredentialTokenSource, error) {
	cred, err := azidentity.NewClientCertificateCredential(tenantID, clientID, certs, key, opts)
	if err != nil {
		return nil, fmt.Errorf("certificate credential for app %s: %w", clientID, err)
	}
	return NewCredentialTokenSource(cred), nil
}

// LoadCertificate reads a PEM or PKCS#12 (PFX) file holding the certificate and its private
// key. password may be nil for an unencrypted file.
func LoadCertificate(path string, password []byte) ([]*x509.Certificate, crypto.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load certificate: %w", err)
	}
	certs, key, err := azidentity.ParseCertificates(data, password)
	if err != nil {
		return nil, nil, fmt.Errorf("load certificate %s: %w", path, err)
	}
	return certs, key, nil
}

// Scope is the app-only scope for a SharePoint host.
func Scope(host string) string {
	return "https://" + strings.ToLower(host) + "/.default"
}

// Token gets a token for https://{host}/.default.
func (s *CredentialTokenSource) Token(ctx context.Context, host string) (string, error) {
	if host == "" || strings.ContainsAny(host, "/:@ ") {
		return "", fmt.Errorf("token: %q is not a host name", host)
	}
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{Scope(host)}})
	if err != nil {
		return "", err
	}
	return tok.Token, nil
}
