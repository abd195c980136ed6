package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/crypto/quickxorhash"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/importcheck"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// importPackage is an import package to build in Azurite: blobs by name, and which get no
// snapshot.
type importPackage struct {
	content, manifests map[string][]byte
	noSnapshot         map[string]bool
	contentPerms       sas.ContainerPermissions
	manifestPerms      sas.ContainerPermissions
	sameContainer      bool
}

// fileSPObject is one SPFile of a Manifest.xml, as the Migration API overview's sample writes it.
func fileSPObject(i int, value string, size int) string {
	return fmt.Sprintf(`<SPObject Id="00000000-0000-0000-0000-%012d" ObjectType="SPFile" ParentId="75be48d8-59a5-4558-8dd8-5eb2c4e94bc5" ParentWebId="2f887e64-876b-4fa7-bb03-0a9ca1cf3d33" ParentWebUrl="/" Url="/Shared Documents/%s">`+
		`<File Url="Shared Documents/%s" Id="00000000-0000-0000-0000-%012d" Name="%s" FileValue="%s" FileSize="%d" Version="1.0" /></SPObject>`, i, value, value, i, value, value, size)
}

func goodPackage() *importPackage {
	pack := bytes.Repeat([]byte{0x5a, 0x13, 0xc4, 0x77}, 1024) // 4 KiB: whole AES blocks, no zip header
	sum, _, _ := quickxorhash.ReadBase64(bytes.NewReader(pack))
	manifest := `<?xml version="1.0" encoding="utf-8"?><SPObjects xmlns="urn:deployment-manifest-schema">` +
		fileSPObject(1, "01.dat", 50) + fileSPObject(2, "02.dat", 1000) + fileSPObject(3, "03.dat", 2000) + `</SPObjects>`
	archived := `<?xml version="1.0" encoding="utf-8"?><ArchivedFiles><ArchivedFile Name="pack0.zip" Checksum="` + sum +
		`"><File FileValue="02.dat" /><File FileValue="03.dat" /></ArchivedFile></ArchivedFiles>`
	return &importPackage{
		content:       map[string][]byte{"01.dat": bytes.Repeat([]byte("x"), 50), "pack0.zip": pack},
		manifests:     map[string][]byte{"Manifest.xml": []byte(manifest), "ArchivedFiles.xml": []byte(archived)},
		noSnapshot:    map[string]bool{},
		contentPerms:  sas.ContainerPermissions{Read: true, List: true},
		manifestPerms: sas.ContainerPermissions{Read: true, List: true, Write: true},
	}
}

// build uploads the package into two fresh containers (one if sameContainer) and returns the
// arguments of `preflight import`.
func (p *importPackage) build(t *testing.T, az *testenv.Azurite, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acct, err := az.Account()
	if err != nil {
		t.Fatal(err)
	}
	contentC, manifestC := name+"-content", name+"-manifest"
	if p.sameContainer {
		manifestC = contentC
	}
	upload := func(container string, blobs map[string][]byte) {
		if err := acct.EnsureContainer(ctx, container); err != nil {
			t.Fatal(err)
		}
		for n, data := range blobs {
			bc := acct.Blob().ServiceClient().NewContainerClient(container).NewBlockBlobClient(n)
			if _, err := bc.UploadBuffer(ctx, data, nil); err != nil {
				t.Fatal(err)
			}
			if !p.noSnapshot[n] {
				if _, err := bc.CreateSnapshot(ctx, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	upload(contentC, p.content)
	upload(manifestC, p.manifests)
	contentSAS, err := az.ContainerSAS(ctx, contentC, p.contentPerms, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	manifestSAS, err := az.ContainerSAS(ctx, manifestC, p.manifestPerms, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"preflight", "import", "--content-sas", contentSAS, "--manifest-sas", manifestSAS}
}

// TestPreflightImport: a package built by Microsoft's rules passes every rule; each broken rule
// fails on its own line naming the blob, and no signature is printed.
func TestPreflightImport(t *testing.T) {
	az := azurite(t)
	args := goodPackage().build(t, az, "good")
	out, err := amrctl(t, "nats://unused", append([]string{"-o", "json"}, args...)...)
	var fs []importcheck.Finding
	if jerr := json.Unmarshal([]byte(out), &fs); err != nil || jerr != nil {
		t.Fatalf("good package: %v %v\n%s", err, jerr, out)
	}
	rules := map[string]bool{}
	for _, f := range fs {
		rules[f.Rule] = true
		if f.Status != importcheck.Pass {
			t.Errorf("good package: %+v", f)
		}
	}
	if len(rules) < 11 {
		t.Errorf("good package: only %d rules checked: %v", len(rules), rules)
	}
	table, err := amrctl(t, "nats://unused", args...)
	if err != nil || strings.Contains(table, "sig=") && !strings.Contains(table, "sig=REDACTED") {
		t.Errorf("table: %v\n%s", err, table)
	}

	bigPack := bytes.Repeat([]byte{0x11}, 11<<20)
	bigSum, _, _ := quickxorhash.ReadBase64(bytes.NewReader(bigPack))
	cases := []struct {
		name   string
		mutate func(p *importPackage)
		rule   string
		blob   string
	}{
		{"content SAS with Write", func(p *importPackage) { p.contentPerms.Write = true }, "content SAS Read+List only", ""},
		{"manifest SAS without List", func(p *importPackage) { p.manifestPerms.List = false }, "manifest SAS Read+List+Write only", ""},
		{"one container", func(p *importPackage) { p.sameContainer = true }, "content and manifest in different containers", ""},
		{"blob without snapshot", func(p *importPackage) { p.noSnapshot["01.dat"] = true }, "snapshot on every content blob", "01.dat"},
		{"three archives", func(p *importPackage) {
			a := string(p.manifests["ArchivedFiles.xml"])
			i := strings.Index(a, "<ArchivedFile ")
			j := strings.Index(a, "</ArchivedFiles>")
			entry := a[i:j]
			p.manifests["ArchivedFiles.xml"] = []byte(a[:j] + entry + entry + a[j:])
		}, "at most two archives per package", "ArchivedFiles.xml"},
		{"archive over 10 MB", func(p *importPackage) {
			p.content["pack0.zip"] = bigPack
			p.manifests["ArchivedFiles.xml"] = bytes.Replace(p.manifests["ArchivedFiles.xml"], []byte(checksumOf(p)), []byte(bigSum), 1)
		}, "archive up to 10 MB", "pack0.zip"},
		{"plain zip archive", func(p *importPackage) {
			zip := append([]byte("PK\x03\x04"), p.content["pack0.zip"][4:]...)
			sum, _, _ := quickxorhash.ReadBase64(bytes.NewReader(zip))
			p.manifests["ArchivedFiles.xml"] = bytes.Replace(p.manifests["ArchivedFiles.xml"], []byte(checksumOf(p)), []byte(sum), 1)
			p.content["pack0.zip"] = zip
		}, "archive encrypted", "pack0.zip"},
		{"wrong checksum", func(p *importPackage) {
			p.manifests["ArchivedFiles.xml"] = bytes.Replace(p.manifests["ArchivedFiles.xml"], []byte(checksumOf(p)), []byte(base64.StdEncoding.EncodeToString(make([]byte, 20))), 1)
		}, "archive QuickXorHash as stated", "pack0.zip"},
		{"archived file of 100 KB", func(p *importPackage) {
			p.manifests["Manifest.xml"] = bytes.Replace(p.manifests["Manifest.xml"], []byte(`FileSize="2000"`), []byte(`FileSize="102390"`), 1)
		}, "archived files under 100 KB after encryption", "pack0.zip"},
		{"compressed archived file", func(p *importPackage) {
			p.manifests["ArchivedFiles.xml"] = bytes.Replace(p.manifests["ArchivedFiles.xml"], []byte(`"03.dat"`), []byte(`"03.gz"`), 1)
		}, "archived files not compressed individually", "pack0.zip"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := goodPackage()
			tc.mutate(p)
			args := p.build(t, az, fmt.Sprintf("broken%d", i))
			out, err := amrctl(t, "nats://unused", append([]string{"-o", "json"}, args...)...)
			if !errors.Is(err, cli.ErrChecksFailed) || cli.ExitCode(err) != cli.ExitFailed {
				t.Fatalf("err = %v, want failed checks\n%s", err, out)
			}
			var fs []importcheck.Finding
			if err := json.Unmarshal([]byte(out), &fs); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, f := range fs {
				if f.Status == importcheck.Fail && f.Rule != tc.rule {
					t.Errorf("another rule failed too: %+v", f)
				}
				if f.Rule == tc.rule && f.Status == importcheck.Fail && strings.HasSuffix(f.Blob, tc.blob) {
					found = true
				}
			}
			if !found {
				t.Errorf("no failure of %q naming %q:\n%s", tc.rule, tc.blob, out)
			}
		})
	}
}

// checksumOf is the Checksum the package's ArchivedFiles.xml states for pack0.zip.
func checksumOf(p *importPackage) string {
	a := string(p.manifests["ArchivedFiles.xml"])
	_, rest, _ := strings.Cut(a, `Checksum="`)
	sum, _, _ := strings.Cut(rest, `"`)
	return sum
}
