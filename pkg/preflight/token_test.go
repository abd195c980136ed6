package preflight_test

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/preflight"
)

// TestCheckTokenAudience: SharePoint tokens carry either https://host or the v1 form
// 00000003-0000-0ff1-ce00-000000000000/host@tenant; both name the host, Graph's does not.
func TestCheckTokenAudience(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	jwt := func(aud string) string {
		payload := `{"aud":"` + aud + `","roles":["Sites.Read.All"],"exp":1700003600}`
		return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".x"
	}
	tests := []struct {
		aud  string
		want preflight.Status
	}{
		{"https://contoso.sharepoint.com", preflight.Pass},
		{"https://CONTOSO.sharepoint.com/", preflight.Pass},
		{"00000003-0000-0ff1-ce00-000000000000/contoso.sharepoint.com@1e1f1a2b-0000-0000-0000-000000000000", preflight.Pass},
		{"https://graph.microsoft.com", preflight.Fail},
		{"https://contoso-my.sharepoint.com", preflight.Fail},
	}
	for _, tt := range tests {
		for _, r := range preflight.CheckToken(jwt(tt.aud), "contoso.sharepoint.com", now) {
			if r.Check == "token audience" && r.Status != tt.want {
				t.Errorf("aud %q: %s, want %s", tt.aud, r.Status, tt.want)
			}
		}
	}
	if _, err := preflight.DecodeJWT("spsim-dev-token"); !errors.Is(err, preflight.ErrNotJWT) {
		t.Errorf("DecodeJWT of a plain token = %v, want ErrNotJWT", err)
	}
}
