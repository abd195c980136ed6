package spo

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"time"
)

// Environment variables holding SharePoint credentials: secrets, so never flags.
const (
	// TokenEnv holds a static bearer token (the simulator's; never used against a real tenant).
	TokenEnv = "AMR_SP_TOKEN"
	// CertPasswordEnv holds the password of the certificate file, if it has one.
	CertPasswordEnv = "AMR_SP_CERT_PASSWORD"
)

// Config is how a service reaches SharePoint: app-only certificate credentials in production, a
// static token for the simulator.
type Config struct {
	UserAgent string
	TenantID  string
	ClientID  string
	CertFile  string
	Timeout   time.Duration
	// MaxRetryAfter caps the wait a Retry-After may ask for (Options.MaxRetryAfter).
	MaxRetryAfter time.Duration
	// Token and CertPassword come from the environment (LoadSecrets).
	Token        string
	CertPassword string
}

// RegisterFlags adds the SharePoint flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.UserAgent, "sp-user-agent", "ISV|amrpipe|amrpipe/0.1", "User-Agent decorating SharePoint calls (ISV|Company|App/Version)")
	fs.StringVar(&c.TenantID, "sp-tenant-id", "", "Entra ID tenant of the app registration (certificate auth)")
	fs.StringVar(&c.ClientID, "sp-client-id", "", "app (client) id of the app registration (certificate auth)")
	fs.StringVar(&c.CertFile, "sp-cert-file", "", "PEM or PFX certificate with its private key (password in "+CertPasswordEnv+")")
	fs.DurationVar(&c.Timeout, "sp-timeout", 2*time.Minute, "timeout of one SharePoint call")
	fs.DurationVar(&c.MaxRetryAfter, "sp-max-retry-after", DefaultMaxRetryAfter, "longest wait a Retry-After may ask for; longer ones are capped and counted")
}

// LoadSecrets reads the token and certificate password from the environment.
func (c *Config) LoadSecrets(lookup func(string) (string, bool)) {
	if v, ok := lookup(TokenEnv); ok {
		c.Token = v
	}
	if v, ok := lookup(CertPasswordEnv); ok {
		c.CertPassword = v
	}
}

// ErrNoCredentials means neither a certificate nor a static token was configured.
var ErrNoCredentials = errors.New("no SharePoint credentials: set -sp-tenant-id, -sp-client-id and -sp-cert-file, or " + TokenEnv + " for the simulator")

// TokenSource returns the token source the configuration describes: the certificate's when one
// is set, else the static token.
func (c *Config) TokenSource() (TokenSource, error) {
	switch {
	case c.CertFile != "":
		certs, key, err := LoadCertificate(c.CertFile, []byte(c.CertPassword))
		if err != nil {
			return nil, err
		}
		ts, err := NewCertificateTokenSource(c.TenantID, c.ClientID, certs, key, nil)
		if err != nil {
			return nil, fmt.Errorf("certificate credential: %w", err)
		}
		return ts, nil
	case c.Token != "":
		return StaticToken(c.Token), nil
	default:
		return nil, ErrNoCredentials
	}
}

// NewClient builds the client the configuration describes.
func (c *Config) NewClient(observer func(Observation)) (*Client, error) {
	ts, err := c.TokenSource()
	if err != nil {
		return nil, err
	}
	return New(Options{HTTPClient: &http.Client{Timeout: c.Timeout}, Tokens: ts, UserAgent: c.UserAgent, Observer: observer,
		MaxRetryAfter: c.MaxRetryAfter})
}
