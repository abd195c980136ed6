package sas_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	blobsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

// now is the fixed clock of these tests; expiry values are relative to it.
var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const (
	future = "2026-12-01T00:00:00Z"
	past   = "2026-11-01T00:00:00Z"
	sig    = "c2VjcmV0LXNpZ25hdHVyZS12YWx1ZQ%3D%3D" // "secret-signature-value==" base64, encoded
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, url string
		parse     func(string) (sas.Info, error)
		want      sas.Info
		wantErr   error
	}{
		{
			name:  "azure blob host",
			url:   "https://acct.blob.core.windows.net/manifests?sv=2026-12-06&sr=c&sp=rw&spr=https&se=" + future + "&sig=" + sig,
			parse: sas.Parse,
			want: sas.Info{Scheme: "https", Host: "acct.blob.core.windows.net", Account: "acct", Name: "manifests",
				Service: sas.ServiceBlob, Resource: "c", Permissions: "rw", Protocol: "https",
				Expiry: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Version: "2026-12-06", Signed: true},
		},
		{
			name:  "sovereign cloud queue host, trailing slash",
			url:   "https://acct.queue.core.chinacloudapi.cn/reports/?sv=2020-02-10&sp=a&se=2026-12-01&st=2026-11-20T10:00Z&sig=" + sig,
			parse: sas.Parse,
			want: sas.Info{Scheme: "https", Host: "acct.queue.core.chinacloudapi.cn", Account: "acct", Name: "reports",
				Service: sas.ServiceQueue, Permissions: "a", Version: "2020-02-10", Signed: true,
				Start:  time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC),
				Expiry: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		},
		{
			name:  "azurite path style, no hint",
			url:   "http://127.0.0.1:10000/devstoreaccount1/manifests?sr=c&sp=rw&se=" + future + "&sig=" + sig,
			parse: sas.Parse,
			want: sas.Info{Scheme: "http", Host: "127.0.0.1:10000", Account: "devstoreaccount1", Name: "manifests",
				PathStyle: true, Resource: "c", Permissions: "rw", Expiry: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Signed: true},
		},
		{
			name:  "azurite path style, queue hint",
			url:   "http://127.0.0.1:10001/devstoreaccount1/q1?sp=a&se=" + future + "&sig=" + sig,
			parse: sas.ParseQueue,
			want: sas.Info{Scheme: "http", Host: "127.0.0.1:10001", Account: "devstoreaccount1", Name: "q1",
				Service: sas.ServiceQueue, PathStyle: true, Permissions: "a", Expiry: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Signed: true},
		},
		{
			name:  "account SAS",
			url:   "https://acct.blob.core.windows.net/c?ss=b&srt=co&sp=rw&se=" + future + "&sig=" + sig,
			parse: sas.ParseContainer,
			want: sas.Info{Scheme: "https", Host: "acct.blob.core.windows.net", Account: "acct", Name: "c",
				Service: sas.ServiceBlob, Permissions: "rw", Expiry: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), AccountSAS: true, Signed: true},
		},
		{name: "queue host given as container", url: "https://acct.queue.core.windows.net/q?sp=a&sig=" + sig, parse: sas.ParseContainer, wantErr: sas.ErrWrongService},
		{name: "blob URL, not a container", url: "https://acct.blob.core.windows.net/c/dir/blob.xml?sig=" + sig, parse: sas.Parse, wantErr: sas.ErrInvalidURL},
		{name: "no name", url: "https://acct.blob.core.windows.net/?sig=" + sig, parse: sas.Parse, wantErr: sas.ErrInvalidURL},
		{name: "not a URL", url: "::not a url sig=" + sig, parse: sas.Parse, wantErr: sas.ErrInvalidURL},
		{name: "ftp", url: "ftp://acct.blob.core.windows.net/c?sig=" + sig, parse: sas.Parse, wantErr: sas.ErrInvalidURL},
		{name: "bad expiry", url: "https://acct.blob.core.windows.net/c?se=tomorrow&sig=" + sig, parse: sas.Parse, wantErr: sas.ErrInvalidURL},
		{name: "bad escape", url: "https://acct.blob.core.windows.net/c?sig=" + sig + "%zz", parse: sas.Parse, wantErr: sas.ErrInvalidURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.url)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				assertNoSecret(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestChecks(t *testing.T) {
	const (
		mBase = "https://acct.blob.core.windows.net/manifests?sv=2026-12-06&sr=c"
		qBase = "https://acct.queue.core.windows.net/reports?sv=2020-02-10"
	)
	manifest, queue := sas.CheckManifestContainerAt, sas.CheckQueueAt
	tests := []struct {
		name, url string
		check     func(string, time.Time) error
		wantIs    []error
		wantMsg   string
	}{
		{check: manifest, name: "rw", url: mBase + "&sp=rw&se=" + future + "&sig=" + sig},
		{check: manifest, name: "wr order does not matter", url: mBase + "&sp=wr&se=" + future + "&sig=" + sig},
		{check: manifest, name: "azurite", url: "http://127.0.0.1:10000/devstoreaccount1/m?sr=c&sp=rw&se=" + future + "&sig=" + sig},
		{
			check: manifest, name: "list too", url: mBase + "&sp=rwl&se=" + future + "&sig=" + sig,
			wantIs:  []error{sas.ErrExtraPermissions},
			wantMsg: "manifest container SAS for acct/manifests has permissions rwl; SharePoint requires exactly rw (Read and Write)",
		},
		{
			check: manifest, name: "read only", url: mBase + "&sp=r&se=" + future + "&sig=" + sig,
			wantIs:  []error{sas.ErrMissingPermission},
			wantMsg: "manifest container SAS for acct/manifests has permissions r; SharePoint requires exactly rw (Read and Write)",
		},
		{check: manifest, name: "read, list", url: mBase + "&sp=rl&se=" + future + "&sig=" + sig, wantIs: []error{sas.ErrMissingPermission, sas.ErrExtraPermissions}},
		{check: manifest, name: "everything", url: mBase + "&sp=racwdxltmeop&se=" + future + "&sig=" + sig, wantIs: []error{sas.ErrExtraPermissions}},
		{check: manifest, name: "no sp", url: mBase + "&se=" + future + "&sig=" + sig, wantIs: []error{sas.ErrMissingPermission}},
		{
			check: manifest, name: "expired", url: mBase + "&sp=rw&se=" + past + "&sig=" + sig,
			wantIs:  []error{sas.ErrExpired},
			wantMsg: "manifest container SAS for acct/manifests expired at 2026-11-01T00:00:00Z: SAS expired",
		},
		{check: manifest, name: "no expiry", url: mBase + "&sp=rw&sig=" + sig, wantIs: []error{sas.ErrNotSAS}},
		{check: manifest, name: "unsigned", url: mBase + "&sp=rw&se=" + future, wantIs: []error{sas.ErrNotSAS}},
		{
			check: manifest, name: "blob SAS", url: "https://acct.blob.core.windows.net/manifests?sr=b&sp=rw&se=" + future + "&sig=" + sig,
			wantIs:  []error{sas.ErrWrongResource},
			wantMsg: "manifest container SAS for acct/manifests has sr=b; SharePoint requires a container SAS (sr=c): wrong SAS resource type",
		},
		{check: manifest, name: "account SAS", url: "https://acct.blob.core.windows.net/m?ss=b&srt=co&sp=rw&se=" + future + "&sig=" + sig, wantIs: []error{sas.ErrWrongResource}},
		{check: manifest, name: "queue URL", url: "https://acct.queue.core.windows.net/q?sp=a&se=" + future + "&sig=" + sig, wantIs: []error{sas.ErrWrongService}},
		{check: queue, name: "add", url: qBase + "&sp=a&se=" + future + "&sig=" + sig},
		{check: queue, name: "add and more", url: qBase + "&sp=raup&se=" + future + "&sig=" + sig},
		{check: queue, name: "azurite", url: "http://127.0.0.1:10001/devstoreaccount1/q?sp=a&se=" + future + "&sig=" + sig},
		{
			check: queue, name: "read process", url: qBase + "&sp=rp&se=" + future + "&sig=" + sig,
			wantIs:  []error{sas.ErrMissingPermission},
			wantMsg: "queue SAS for acct/reports has permissions rp; SharePoint requires a (Add)",
		},
		{check: queue, name: "expired", url: qBase + "&sp=a&se=" + past + "&sig=" + sig, wantIs: []error{sas.ErrExpired}},
		{check: queue, name: "blob URL", url: "https://acct.blob.core.windows.net/c?sr=c&sp=a&se=" + future + "&sig=" + sig, wantIs: []error{sas.ErrWrongService}},
		{check: queue, name: "unsigned", url: qBase + "&sp=a&se=" + future, wantIs: []error{sas.ErrNotSAS}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.check(tt.url, now), tt.wantIs, tt.wantMsg)
		})
	}
}

func checkErr(t *testing.T, err error, wantIs []error, wantMsg string) {
	t.Helper()
	if len(wantIs) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %v", wantIs)
	}
	for _, w := range wantIs {
		if !errors.Is(err, w) {
			t.Errorf("errors.Is(%v, %v) = false", err, w)
		}
	}
	if wantMsg != "" && err.Error() != wantMsg {
		t.Errorf("message\n got %q\nwant %q", err.Error(), wantMsg)
	}
	assertNoSecret(t, err)
}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{sig, "c2VjcmV0LXNpZ25hdHVyZS12YWx1ZQ"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains the signature", err)
		}
	}
}

// TestSDKGeneratedSAS checks the parser and the rule against what the Azure SDK really signs.
func TestSDKGeneratedSAS(t *testing.T) {
	cred, err := azblob.NewSharedKeyCredential("devstoreaccount1", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
	if err != nil {
		t.Fatal(err)
	}
	sign := func(p blobsas.ContainerPermissions) string {
		q, err := blobsas.BlobSignatureValues{
			Protocol: blobsas.ProtocolHTTPSandHTTP, ExpiryTime: now.Add(time.Hour),
			ContainerName: "manifests", Permissions: p.String(),
		}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		return "http://127.0.0.1:10000/devstoreaccount1/manifests?" + q.Encode()
	}
	if err := sas.CheckManifestContainerAt(sign(blobsas.ContainerPermissions{Read: true, Write: true}), now); err != nil {
		t.Errorf("SDK R+W SAS refused: %v", err)
	}
	rwl := sign(blobsas.ContainerPermissions{Read: true, Write: true, List: true})
	err = sas.CheckManifestContainerAt(rwl, now)
	if !errors.Is(err, sas.ErrExtraPermissions) {
		t.Fatalf("SDK R+W+L SAS: err = %v, want ErrExtraPermissions", err)
	}
	for _, s := range sas.Signatures(rwl) {
		if strings.Contains(err.Error(), s) || strings.Contains(sas.Redact(rwl), s) {
			t.Errorf("signature %q leaked", s)
		}
	}
}
