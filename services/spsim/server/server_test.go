package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	qsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/sas"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

const testToken = "test-token-7f3a"

// storage is the Azurite every test of this package shares (it takes a second or two to start).
var storage *testenv.Azurite

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	srv, err := testenv.StartAzurite(ctx, testenv.AzuriteOptions{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "azurite:", err)
		os.Exit(1)
	}
	storage = srv
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "azurite close:", err)
	}
	os.Exit(code)
}

// sim is one simulator behind a real HTTP listener, with a client for it.
type sim struct {
	t      *testing.T
	tenant *tenant.Tenant
	srv    *server.Server
	http   *httptest.Server
	client *spo.Client
}

func newSim(t *testing.T, p tenant.Profile, mod func(*server.Config)) *sim {
	t.Helper()
	tn, err := tenant.New(p)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := storage.Account()
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Tenant: tn, Token: testToken, Admin: true, MaxManifestBytes: 2 << 20, Storage: acct}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	client, err := spo.New(spo.Options{Tokens: spo.StaticToken(testToken), UserAgent: "ISV|amrpipe|spsim-test/1.0"})
	if err != nil {
		t.Fatal(err)
	}
	return &sim{t: t, tenant: tn, srv: srv, http: hs, client: client}
}

func (s *sim) site(path string) string { return s.http.URL + path }

// admin calls the simulator's test-only API.
func (s *sim) admin(method, path string, body any) []byte {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.http.URL+"/_spsim/"+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("admin %s %s: %d %s %v", method, path, resp.StatusCode, out, err)
	}
	return out
}

type object struct{ Type, ID string }

// truth is the simulator's ground truth for a job, as a multiset.
func (s *sim) truth(jobID string) map[object]int {
	s.t.Helper()
	out := map[object]int{}
	sc := bufio.NewScanner(bytes.NewReader(s.admin(http.MethodGet, "jobs/"+jobID+"/truth", nil)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct{ Type, ID, Error string }
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Error != "" {
			s.t.Fatalf("truth line %q: %v", sc.Text(), err)
		}
		out[object{l.Type, l.ID}]++
	}
	return out
}

// events reads a job's progress until JobEnd, page by page, and returns the decoded events.
func (s *sim) events(ctx context.Context, site, jobID string) []map[string]string {
	s.t.Helper()
	var out []map[string]string
	token := ""
	for {
		p, err := s.client.GetMigrationJobProgress(ctx, site, jobID, token)
		if err != nil {
			s.t.Fatalf("progress: %v", err)
		}
		for _, l := range p.Logs {
			var ev map[string]string
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				s.t.Fatalf("event %q is not a flat object of strings: %v", l, err)
			}
			out = append(out, ev)
			if ev["Event"] == "JobEnd" {
				return out
			}
		}
		token = p.NextToken
		select {
		case <-ctx.Done():
			s.t.Fatalf("no JobEnd for %s: %v", jobID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func containerSAS(t *testing.T, name string, perms sas.ContainerPermissions) string {
	t.Helper()
	u, err := storage.ContainerSAS(context.Background(), name, perms, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// manifestObjects downloads every blob named by FinishManifestFileUpload through the job's SAS,
// decrypts it with the IV from its metadata, and collects the SPObjects of the Manifest parts.
func manifestObjects(t *testing.T, ctx context.Context, sasURL string, key []byte, events []map[string]string) (map[object]int, []string) {
	t.Helper()
	cc, err := container.NewClientWithNoCredential(sasURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[object]int{}
	var files []string
	for _, ev := range events {
		if ev["Event"] != "FinishManifestFileUpload" {
			continue
		}
		name := ev["ManifestFileName"]
		files = append(files, name)
		resp, err := cc.NewBlobClient(name).DownloadStream(ctx, nil)
		if err != nil {
			t.Fatalf("download %s: %v", name, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if key != nil {
			data = decrypt(t, name, key, resp.Metadata, data)
		}
		if !strings.Contains(name, "/Manifest") {
			continue
		}
		dec := xml.NewDecoder(bytes.NewReader(data))
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s is not well-formed XML: %v", name, err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "SPObject" {
				var o object
				for _, a := range se.Attr {
					switch a.Name.Local {
					case "ObjectType":
						o.Type = a.Value
					case "Id":
						o.ID = a.Value
					}
				}
				got[o]++
			}
		}
	}
	return got, files
}

// decrypt is an independent AES-256-CBC/PKCS#7 decrypter (the standard library), with the IV read
// from blob metadata case-insensitively, as SharePoint's clients do.
func decrypt(t *testing.T, name string, key []byte, md map[string]*string, data []byte) []byte {
	t.Helper()
	var ivText string
	for k, v := range md {
		if strings.EqualFold(k, "IV") && v != nil {
			ivText = *v
		}
	}
	iv, err := base64.StdEncoding.DecodeString(ivText)
	if err != nil || len(iv) != aes.BlockSize {
		t.Fatalf("%s: IV metadata %q: %v", name, ivText, err)
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		t.Fatalf("%s: ciphertext length %d is not whole blocks", name, len(data))
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	cipher.NewCBCDecrypter(blk, iv).CryptBlocks(data, data)
	pad := int(data[len(data)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(data[len(data)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		t.Fatalf("%s: bad PKCS#7 padding", name)
	}
	return data[:len(data)-pad]
}

func diff(t *testing.T, got, want map[object]int) {
	t.Helper()
	var missing, extra, dup []string
	for o, n := range want {
		if got[o] == 0 {
			missing = append(missing, fmt.Sprint(o))
		}
		if n > 1 {
			t.Errorf("ground truth lists %v %d times", o, n)
		}
	}
	for o, n := range got {
		if want[o] == 0 {
			extra = append(extra, fmt.Sprint(o))
		} else if n > 1 {
			dup = append(dup, fmt.Sprint(o))
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra)+len(dup) > 0 {
		t.Fatalf("manifests vs ground truth: %d missing (e.g. %v), %d extra (e.g. %v), %d duplicated (e.g. %v); want %d objects",
			len(missing), head(missing), len(extra), head(extra), len(dup), head(dup), len(want))
	}
}

func head(s []string) []string { return s[:min(3, len(s))] }

func newAESKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// smallFolders picks folders under one library with fewer than 10K files each until they hold at
// least minFiles files: what the planner would batch into one multi-URL job.
func smallFolders(t *testing.T, tn *tenant.Tenant, libraryRoot string, minFiles int64) []string {
	t.Helper()
	var urls []string
	var total int64
	var walk func(string)
	walk = func(dir string) {
		subs, err := tn.Subfolders(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range subs {
			if total >= minFiles || len(urls) == 5000 {
				return
			}
			if f.SMTotalFileCount < 10000 {
				urls = append(urls, f.ServerRelativeURL)
				total += f.SMTotalFileCount
				continue
			}
			walk(f.ServerRelativeURL)
		}
	}
	walk(libraryRoot)
	if total < minFiles {
		t.Fatalf("library %s has only %d files in small folders, want %d", libraryRoot, total, minFiles)
	}
	return urls
}

func TestEncryptedMultiURLJobMatchesGroundTruth(t *testing.T) {
	if testing.Short() {
		t.Skip("exports 50K+ items through Azurite")
	}
	s := newSim(t, tenant.DefaultProfile(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lib := largestLibraryOfSmallFolders(t, s.tenant)
	web, err := s.tenant.WebOf(lib.RootFolderURL)
	if err != nil {
		t.Fatal(err)
	}
	folders := smallFolders(t, s.tenant, lib.RootFolderURL, 50000)
	urls := make([]string, len(folders))
	for i, f := range folders {
		urls[i] = s.http.URL + f
	}
	key := newAESKey(t)
	sasURL := containerSAS(t, "multiurl", sas.ContainerPermissions{Read: true, Write: true})
	queueURL, err := storage.QueueSAS(ctx, "multiurl-events", qsas.QueuePermissions{Add: true}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	site := s.site(web.ServerRelativeURL)
	info, err := s.client.CreateSPAsyncReadJobWithMultiUrl(ctx, site, urls, spo.ReadJobRequest{
		Options:              spo.ReadOptions{IncludeVersions: true, IncludePermission: true},
		EncryptionKey:        key,
		ManifestContainerURI: sasURL,
		QueueURI:             queueURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.JobID == "" || info.CurrentChangeToken == "" {
		t.Fatalf("create returned %+v", info)
	}
	events := s.events(ctx, site, info.JobID)
	got, files := manifestObjects(t, ctx, sasURL, key, events)
	want := s.truth(info.JobID)
	if len(want) < 50000 {
		t.Fatalf("ground truth has %d objects, want a job over 50K items", len(want))
	}
	diff(t, got, want)
	parts := 0
	for _, f := range files {
		if strings.Contains(f, "/Manifest") {
			parts++
		}
		if !strings.HasPrefix(f, info.JobID+"/") {
			t.Errorf("blob %s is outside the job's folder", f)
		}
	}
	if parts < 2 {
		t.Errorf("manifest was not split at 2 MiB: parts %v", files)
	}
	for _, want := range []string{"UserGroup.xml", "SystemData.xml", "ExportSettings.xml", "RootObjectMap.xml", "LookupListMap.xml", "Requirements.xml", "ViewFormsList.xml"} {
		if !contains(files, info.JobID+"/"+want) {
			t.Errorf("no FinishManifestFileUpload for %s in %v", want, files)
		}
	}
	end := events[len(events)-1]
	if end["MigrationType"] != "AsyncRead" || end["ObjectsProcessed"] != fmt.Sprint(len(want)) {
		t.Errorf("JobEnd = %v, want AsyncRead with ObjectsProcessed %d", end, len(want))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// largestLibraryOfSmallFolders finds the library with the most items in the default profile that is
// not the >1M archive.
func largestLibraryOfSmallFolders(t *testing.T, tn *tenant.Tenant) tenant.List {
	t.Helper()
	var best tenant.List
	var bestFiles int64
	for _, site := range tn.Sites() {
		lists, err := tn.Lists(site.ServerRelativeURL)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lists {
			if l.BaseTemplate != 101 {
				continue
			}
			f, err := tn.Folder(l.RootFolderURL)
			if err != nil {
				t.Fatal(err)
			}
			if f.SMTotalFileCount < 1_000_000 && f.SMTotalFileCount > bestFiles {
				best, bestFiles = l, f.SMTotalFileCount
			}
		}
	}
	if best.ID == "" {
		t.Fatal("no document library in the profile")
	}
	return best
}

func decode(t *testing.T, l string) map[string]string {
	t.Helper()
	var ev map[string]string
	if err := json.Unmarshal([]byte(l), &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestCallsAreCounted: the simulator counts every REST call by method, throttled ones too (what
// a client costs the tenant), and says so on its admin API.
func TestCallsAreCounted(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	ctx := context.Background()
	s.admin(http.MethodPost, "faults", map[string]any{"rules": []server.Rule{{Method: "GetMigrationJobStatus", Status: http.StatusTooManyRequests, RetryAfter: "1", Times: 1}}})
	const job = "00000000-0000-0000-0000-000000000001"
	for range 3 {
		_, _ = s.client.GetMigrationJobProgress(ctx, s.site("/sites/small"), job, "")
	}
	_, _ = s.client.GetMigrationJobStatus(ctx, s.site("/sites/small"), job)
	want := map[string]int64{"GetMigrationJobProgress": 3, "GetMigrationJobStatus": 1}
	if got := s.srv.Calls(); !maps.Equal(got, want) {
		t.Errorf("Calls() = %v, want %v", got, want)
	}
	var doc struct{ Calls map[string]int64 }
	if err := json.Unmarshal(s.admin(http.MethodGet, "calls", nil), &doc); err != nil || !maps.Equal(doc.Calls, want) {
		t.Errorf("GET /_spsim/calls = %v (%v), want %v", doc.Calls, err, want)
	}
}
