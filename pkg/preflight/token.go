package preflight

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Claims are the access-token claims the checks read (Microsoft identity platform, "Access token
// claims reference"): aud, the resource the token is for; roles, the application permissions
// granted (app-only tokens); scp, the delegated scopes (user tokens only); exp, the expiry.
type Claims struct {
	Audience string   `json:"aud"`
	Roles    []string `json:"roles"`
	Scopes   string   `json:"scp"`
	Expiry   int64    `json:"exp"`
	AppID    string   `json:"appid"`
	TenantID string   `json:"tid"`
}

// ErrNotJWT is returned by DecodeJWT for a token that is not a JWT (the simulator's).
var ErrNotJWT = errors.New("not a JWT")

// DecodeJWT reads a JWT's payload WITHOUT verifying its signature: it is for diagnosis only,
// SharePoint verifies the token.
func DecodeJWT(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, ErrNotJWT
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload is not base64url", ErrNotJWT)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, fmt.Errorf("%w: payload is not JSON claims", ErrNotJWT)
	}
	return c, nil
}

// readRoles are the application permissions of SharePoint that let an app read every site:
// Sites.Read.All and the ones above it.
var readRoles = []string{"Sites.Read.All", "Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All"}

// CheckToken decodes token and checks what SharePoint will check: app-only, a Sites permission
// of at least Sites.Read.All, the audience is host, not expired. A token that is not a JWT
// gives one warning; the live call decides then.
func CheckToken(token, host string, now time.Time) []Result {
	c, err := DecodeJWT(token)
	if err != nil {
		return []Result{{Check: "token claims", Status: Warn, Detail: "not a JWT, cannot check claims (the simulator's token is not one); the live call decides"}}
	}
	var out []Result
	switch {
	case c.Scopes != "":
		out = append(out, Result{Check: "token app-only", Status: Fail, Detail: "a user (delegated) token: it has scp " + c.Scopes,
			Fix: "authenticate as the application with a certificate (--sp-cert-file): Microsoft tells migration tools to use app-only, user tokens are throttled more"})
	case len(c.Roles) == 0:
		out = append(out, Result{Check: "token app-only", Status: Fail, Detail: "no roles claim: the app was granted no application permission",
			Fix: "grant SharePoint > Application permissions > Sites.Read.All (or Sites.FullControl.All) and admin consent"})
	default:
		out = append(out, Result{Check: "token app-only", Status: Pass, Detail: "application token (roles, no scp)"})
	}
	if i := slices.IndexFunc(c.Roles, func(r string) bool { return slices.Contains(readRoles, r) }); i >= 0 {
		out = append(out, Result{Check: "token permission", Status: Pass, Detail: "roles include " + c.Roles[i]})
	} else if c.Scopes == "" {
		out = append(out, Result{Check: "token permission", Status: Fail, Detail: fmt.Sprintf("roles %v has no Sites.Read.All or higher", c.Roles),
			Fix: "in Entra ID > App registrations > API permissions, add SharePoint > Application permissions > Sites.Read.All (Sites.FullControl.All is what ISVs grant to create AMR jobs) and Grant admin consent"})
	}
	if audienceIs(c.Audience, host) {
		out = append(out, Result{Check: "token audience", Status: Pass, Detail: "aud is " + c.Audience})
	} else {
		out = append(out, Result{Check: "token audience", Status: Fail, Detail: fmt.Sprintf("aud is %q, not %s", c.Audience, host),
			Fix: "request the token with the scope https://" + host + "/.default (the tenant's SharePoint host, not Microsoft Graph)"})
	}
	switch exp := time.Unix(c.Expiry, 0); {
	case c.Expiry == 0:
		out = append(out, Result{Check: "token expiry", Status: Warn, Detail: "no exp claim"})
	case !now.Before(exp):
		out = append(out, Result{Check: "token expiry", Status: Fail, Detail: "expired at " + exp.UTC().Format(time.RFC3339),
			Fix: "get a fresh token (certificate credentials renew it by themselves); if it should be valid, check the clock (see the clock checks)"})
	default:
		out = append(out, Result{Check: "token expiry", Status: Pass, Detail: "valid until " + exp.UTC().Format(time.RFC3339)})
	}
	return out
}

// audienceIs accepts the forms SharePoint tokens carry: https://host, or the v1
// "00000003-0000-0ff1-ce00-000000000000/host@tenant" form.
func audienceIs(aud, host string) bool {
	host = strings.ToLower(host)
	if u, err := url.Parse(aud); err == nil && u.Host != "" {
		return strings.ToLower(u.Hostname()) == host
	}
	_, rest, ok := strings.Cut(strings.ToLower(aud), "/")
	rest, _, _ = strings.Cut(rest, "@")
	return ok && rest == host
}
