package sas_test

import (
	"slices"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

func TestRedact(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{
			name: "container SAS",
			in:   "https://acct.blob.core.windows.net/c?sv=2026-12-06&sr=c&sp=rw&se=2026-12-01T00%3A00%3A00Z&sig=abc%2Bdef%3D",
			want: "https://acct.blob.core.windows.net/c?sv=2026-12-06&sr=c&sp=rw&se=2026-12-01T00%3A00%3A00Z&sig=REDACTED",
		},
		{
			name: "sig first, upper case, fragment kept",
			in:   "http://127.0.0.1:10000/devstoreaccount1/c?SIG=xyz&sp=rw#frag",
			want: "http://127.0.0.1:10000/devstoreaccount1/c?SIG=REDACTED&sp=rw#frag",
		},
		{
			name: "inside a log line and JSON",
			in:   `submit failed body={"azureContainerManifestUri":"https://a.blob.core.windows.net/c?sp=rw&sig=s3cr3t","x":1}`,
			want: `submit failed body={"azureContainerManifestUri":"https://a.blob.core.windows.net/c?sp=rw&sig=REDACTED","x":1}`,
		},
		{
			name: "JSON-escaped ampersand",
			in:   `"https://a.blob.core.windows.net/c?sp=rw\u0026sig=s3cr3t\u0026se=x"`,
			want: `"https://a.blob.core.windows.net/c?sp=rw\u0026sig=REDACTED\u0026se=x"`,
		},
		{
			name: "percent-encoded URL inside another query",
			in:   "https://x/y?next=https%3A%2F%2Fa.blob.core.windows.net%2Fc%3Fsp%3Drw%26sig%3Dab%252Bc%253D%26se%3D1&z=2",
			want: "https://x/y?next=https%3A%2F%2Fa.blob.core.windows.net%2Fc%3Fsp%3Drw%26sig%3DREDACTED%26se%3D1&z=2",
		},
		{name: "other credentials", in: "a?access_token=t1&client_secret=t2&key=t3&ok=1", want: "a?access_token=REDACTED&client_secret=REDACTED&key=REDACTED&ok=1"},
		{name: "userinfo", in: "https://user:pa55@host/p", want: "https://user:REDACTED@host/p"},
		{name: "lookalike keys kept", in: "nextToken=5 design=1 &signal=2", want: "nextToken=5 design=1 &signal=2"},
		{name: "not a URL", in: "plain text, 100% sure", want: "plain text, 100% sure"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sas.Redact(tt.in); got != tt.want {
				t.Errorf("Redact\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSignatures(t *testing.T) {
	got := sas.Signatures("https://a.blob.core.windows.net/c?sp=rw&sig=ab%2Bc%2F%3D")
	for _, want := range []string{"ab%2Bc%2F%3D", "ab+c/="} {
		if !slices.Contains(got, want) {
			t.Errorf("Signatures = %q, missing %q", got, want)
		}
	}
	if got := sas.Signatures("https://a.blob.core.windows.net/c?sp=rw"); got != nil {
		t.Errorf("Signatures without sig = %q", got)
	}
}
