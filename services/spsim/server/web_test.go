package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// get sends a raw GET with the bearer token (token "" sends none) and the Accept header, as curl
// would, and returns the status, headers and body.
func (s *sim) get(path, token, accept string) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.http.URL+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

const (
	nometadata = "application/json;odata=nometadata"
	verboseOD  = "application/json;odata=verbose"
)

// folderPath is the ResourcePath form of a folder call, with the path escaped for the URL.
func folderPath(web, path, sub string) string {
	return web + "/_api/web/GetFolderByServerRelativePath(DecodedUrl='" + (&url.URL{Path: path}).EscapedPath() + "')" + sub
}

// TestQueryOptionsNameOnlyWhatIsServed: a $select or $expand naming a field or property the
// simulator does not serve is refused with SharePoint's 400 for an unknown field, in either
// OData shape; what it does serve comes back shaped by the query. SMTotalFolderCount, which the
// planner once asked for, does not exist in SharePoint and is refused.
func TestQueryOptionsNameOnlyWhatIsServed(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	const web = "/sites/small"
	docs := web + "/Shared Documents"
	big, err := s.tenant.Folder(docs + "/Big")
	if err != nil {
		t.Fatal(err)
	}
	lists, err := s.tenant.Lists(web)
	if err != nil {
		t.Fatal(err)
	}
	token := func(i int) string { return s.tenant.CurrentChangeToken(tenant.Target{ListID: lists[i].ID}) }
	tests := []struct {
		name, path, accept string
		wantStatus         int
		wantMissing        string // the field the 400 names
		want               string // JSON the 200 answer must equal (nometadata)
	}{
		{name: "the folder count the planner asked for", accept: nometadata, wantStatus: 400, wantMissing: "SMTotalFolderCount",
			path: folderPath(web, docs+"/Big", "/ListItemAllFields") + "?$select=SMTotalFileCount,SMTotalFolderCount,SMTotalSize"},
		{name: "the same by the string-based folder call", accept: nometadata, wantStatus: 400, wantMissing: "SMTotalFolderCount",
			path: web + "/_api/web/GetFolderByServerRelativeUrl('" + docs + "/Big')/ListItemAllFields?$select=SMTotalFileCount,SMTotalFolderCount,SMTotalSize"},
		{name: "verbose refusal", accept: verboseOD, wantStatus: 400, wantMissing: "SMTotalFolderCount",
			path: folderPath(web, docs+"/Big", "/ListItemAllFields") + "?$select=SMTotalFolderCount"},
		{name: "unknown web property", accept: nometadata, wantStatus: 400, wantMissing: "Bogus",
			path: web + "/_api/web?$select=Id,Title,Bogus"},
		{name: "unknown expansion", accept: nometadata, wantStatus: 400, wantMissing: "Nope",
			path: web + "/_api/web/lists?$select=Id&$expand=Nope"},
		{name: "unknown property of an expansion", accept: nometadata, wantStatus: 400, wantMissing: "Bogus",
			path: web + "/_api/web/lists?$select=Id,RootFolder/Bogus&$expand=RootFolder"},
		{name: "a storage metric is no folder property", accept: nometadata, wantStatus: 400, wantMissing: "TotalFileCount",
			path: folderPath(web, docs+"/Big", "") + "?$select=TotalFileCount"},
		{name: "a property has no properties", accept: nometadata, wantStatus: 400, wantMissing: "Name",
			path: folderPath(web, docs+"/Big", "") + "?$select=ItemCount/Name"},
		{name: "subfolders with an unknown field", accept: nometadata, wantStatus: 400, wantMissing: "SMTotalFolderCount",
			path: folderPath(web, docs, "/Folders") + "?$select=Name,SMTotalFolderCount"},
		{name: "storage metrics, expanded", accept: nometadata, wantStatus: 200,
			path: folderPath(web, docs+"/Big", "") + "?$select=ItemCount,StorageMetrics&$expand=StorageMetrics",
			want: `{"ItemCount":1200,"StorageMetrics":{"TotalFileCount":1200,"TotalSize":` + jsonNumber(big.SMTotalSize) +
				`,"LastModified":"` + big.Modified.UTC().Format(time.RFC3339) + `"}}`},
		{name: "subfolders with an unknown storage metric", accept: nometadata, wantStatus: 400, wantMissing: "Bogus",
			path: folderPath(web, docs, "/Folders") + "?$select=Name,StorageMetrics/Bogus&$expand=StorageMetrics"},
		{name: "subfolders with an unknown expansion", accept: nometadata, wantStatus: 400, wantMissing: "Properties",
			path: folderPath(web, docs, "/Folders") + "?$select=Name,StorageMetrics&$expand=StorageMetrics,Properties"},
		{name: "subfolders' storage metrics not expanded are left out", accept: nometadata, wantStatus: 200,
			path: folderPath(web, docs+"/Big", "/Folders") + "?$select=Name,StorageMetrics", want: `{"value":[]}`},
		{name: "storage metrics not expanded are left out", accept: nometadata, wantStatus: 200,
			path: folderPath(web, docs+"/Big", "") + "?$select=ItemCount,StorageMetrics", want: `{"ItemCount":1200}`},
		{name: "names match without regard to case", accept: nometadata, wantStatus: 200,
			path: web + "/_api/web/getfolderbyserverrelativepath(decodedurl='" + strings.ReplaceAll(docs, " ", "%20") + "/Big')?$select=itemcount",
			want: `{"ItemCount":1200}`},
		{name: "the folder item's fields", accept: nometadata, wantStatus: 200,
			path: folderPath(web, docs+"/Big", "/ListItemAllFields") + "?$select=SMTotalFileCount,ItemChildCount,FolderChildCount",
			want: `{"SMTotalFileCount":1200,"ItemChildCount":1200,"FolderChildCount":0}`},
		{name: "a library root has no folder item totals", accept: nometadata, wantStatus: 200,
			path: folderPath(web, docs, "/ListItemAllFields") + "?$select=SMTotalFileCount", want: `{}`},
		{name: "lists with their change tokens", accept: nometadata, wantStatus: 200,
			path: web + "/_api/web/lists?$select=Id,CurrentChangeToken",
			want: `{"value":[{"Id":"` + lists[0].ID + `","CurrentChangeToken":{"StringValue":"` + token(0) + `"}},` +
				`{"Id":"` + lists[1].ID + `","CurrentChangeToken":{"StringValue":"` + token(1) + `"}}]}`},
		{name: "a change token has no properties but its string", accept: nometadata, wantStatus: 400, wantMissing: "Bogus",
			path: web + "/_api/web/lists?$select=CurrentChangeToken/Bogus"},
		{name: "lists with the root folder's path", accept: nometadata, wantStatus: 200,
			path: web + "/_api/web/lists?$select=Title,RootFolder/ServerRelativeUrl&$expand=RootFolder",
			want: `{"value":[{"Title":"Documents","RootFolder":{"ServerRelativeUrl":"/sites/small/Shared Documents"}},` +
				`{"Title":"Tasks","RootFolder":{"ServerRelativeUrl":"/sites/small/Lists/Tasks"}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := s.get(tt.path, testToken, tt.accept)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tt.wantStatus, body)
			}
			if tt.wantStatus != 200 {
				key := "odata.error"
				if tt.accept == verboseOD {
					key = "error"
				}
				want := `{"` + key + `":{"code":"-1, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"The field or property '` + tt.wantMissing + `' does not exist."}}}`
				sameJSON(t, body, want)
				return
			}
			sameJSON(t, body, tt.want)
		})
	}
}

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }

func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("answer\n got %s\nwant %s", gb, wb)
	}
}

// TestFolderListingServesEachFoldersStorageMetrics: a subfolder listing with StorageMetrics
// expanded gives each folder the figures its own folder request gives, in either OData shape.
func TestFolderListingServesEachFoldersStorageMetrics(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	const web = "/sites/small"
	const q = "?$select=Name,ServerRelativeUrl,ItemCount,UniqueId,StorageMetrics&$expand=StorageMetrics"
	for _, parent := range []string{web + "/Shared Documents", web + "/Shared Documents/Team-0001"} {
		for _, accept := range []string{nometadata, verboseOD} {
			t.Run(parent+" "+accept, func(t *testing.T) {
				status, _, body := s.get(folderPath(web, parent, "/Folders")+q, testToken, accept)
				if status != 200 {
					t.Fatalf("status %d: %s", status, body)
				}
				var listing struct {
					Value []map[string]json.RawMessage `json:"value"`
					D     struct {
						Results []map[string]json.RawMessage `json:"results"`
					} `json:"d"`
				}
				if err := json.Unmarshal(body, &listing); err != nil {
					t.Fatal(err)
				}
				items := append(listing.Value, listing.D.Results...)
				subs, err := s.tenant.Subfolders(parent)
				if err != nil {
					t.Fatal(err)
				}
				if len(items) == 0 || len(items) != len(subs) {
					t.Fatalf("%d folders listed, the tenant has %d", len(items), len(subs))
				}
				for _, it := range items {
					var path string
					if err := json.Unmarshal(it["ServerRelativeUrl"], &path); err != nil {
						t.Fatal(err)
					}
					status, _, one := s.get(folderPath(web, path, "")+"?$select=StorageMetrics&$expand=StorageMetrics", testToken, accept)
					if status != 200 {
						t.Fatalf("%s: status %d: %s", path, status, one)
					}
					var single map[string]json.RawMessage
					if err := json.Unmarshal(one, &single); err != nil {
						t.Fatal(err)
					}
					if d, ok := single["d"]; ok { // verbose: {"d":{"<method>":{…}}}
						var byMethod map[string]json.RawMessage
						if err := json.Unmarshal(d, &byMethod); err != nil {
							t.Fatal(err)
						}
						for _, v := range byMethod {
							if err := json.Unmarshal(v, &single); err != nil {
								t.Fatal(err)
							}
						}
					}
					if it["StorageMetrics"] == nil {
						t.Fatalf("%s listed without StorageMetrics: %s", path, body)
					}
					sameJSON(t, it["StorageMetrics"], string(single["StorageMetrics"]))
				}
			})
		}
	}
}

// TestClientSizesFoldersBySharePointsFields: the client's FolderTotals over the simulator reads a
// folder's files from StorageMetrics, for a library root too.
func TestClientSizesFoldersBySharePointsFields(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	site := s.site("/sites/small")
	docs := "/sites/small/Shared Documents"
	tests := []struct {
		path      string
		files     int64
		itemCount int64
	}{
		{docs + "/Big", 1200, 1200},
		{docs + "/Team-0001", 40, 31},
		{docs + "/Team-0001/Archive", 10, 8},
		{docs + "/Empty", 0, 0},
		{docs, 12*40 + 1200 + 25, 25 + 14},
		{"/sites/small/Lists/Tasks", 300, 300},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var calls []string
			c, err := spo.New(spo.Options{Tokens: spo.StaticToken(testToken), UserAgent: "ISV|amrpipe|spsim-test/1.0",
				Observer: func(o spo.Observation) { calls = append(calls, o.Method) }})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.FolderTotals(context.Background(), site, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := s.tenant.Folder(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			want := spo.Totals{FileCount: tt.files, Size: f.SMTotalSize, ItemCount: tt.itemCount, Known: true, Source: spo.SourceStorageMetrics}
			if got != want {
				t.Errorf("totals %+v, want %+v", got, want)
			}
			if len(calls) != 1 {
				t.Errorf("%d calls %v, want the folder's StorageMetrics alone", len(calls), calls)
			}
		})
	}
}

// TestTokenAndThrottlingAnswers: a missing or wrong token gets SharePoint's flat token error,
// not an OData error; an injected 429 or 503 carries its headers and no invented body.
func TestTokenAndThrottlingAnswers(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	const lists = "/sites/small/_api/web/lists?$select=Id"
	fault := func(rules ...server.Rule) { s.admin(http.MethodPost, "faults", map[string]any{"rules": rules}) }
	tests := []struct {
		name, token string
		setup       func()
		wantStatus  int
		wantBody    string // "" = no body
		wantHeaders map[string]string
		wantErr     error
	}{
		{name: "no token", wantStatus: 401, wantBody: `{"error_description":"Invalid issuer or signature."}`,
			wantHeaders: map[string]string{"x-ms-diagnostics": `3000006;reason="Token contains invalid signature.";category="invalid_client"`},
			wantErr:     spo.ErrUnauthorized},
		{name: "wrong token", token: "wrong", wantStatus: 401, wantBody: `{"error_description":"Invalid issuer or signature."}`,
			wantErr: spo.ErrUnauthorized},
		{name: "injected 401", token: testToken, setup: func() { fault(server.Rule{Method: "lists", Status: 401, Times: 2}) },
			wantStatus: 401, wantBody: `{"error_description":"Invalid issuer or signature."}`, wantErr: spo.ErrUnauthorized},
		{name: "throttled", token: testToken, setup: func() { fault(server.Rule{Method: "lists", Status: 429, RetryAfter: "7", Times: 2}) },
			wantStatus: 429, wantHeaders: map[string]string{"Retry-After": "7"}, wantErr: spo.ErrThrottled},
		{name: "server too busy", token: testToken,
			setup: func() {
				fault(server.Rule{Method: "lists", Status: 503, RetryAfter: "2", RateLimitReset: "9", Times: 2})
			},
			wantStatus: 503, wantHeaders: map[string]string{"Retry-After": "2", "RateLimit-Reset": "9"}, wantErr: spo.ErrThrottled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			status, h, body := s.get(lists, tt.token, nometadata)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tt.wantStatus, body)
			}
			if tt.wantBody == "" {
				if len(bytes.TrimSpace(body)) != 0 {
					t.Errorf("body %q, want none", body)
				}
			} else {
				sameJSON(t, body, tt.wantBody)
			}
			for k, v := range tt.wantHeaders {
				if got := h.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			tok := tt.token
			if tok == "" {
				tok = "none"
			}
			c, err := spo.New(spo.Options{Tokens: spo.StaticToken(tok), UserAgent: "ISV|amrpipe|spsim-test/1.0"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Lists(context.Background(), s.site("/sites/small")); !errors.Is(err, tt.wantErr) {
				t.Errorf("client error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestManifestFolderTotalsOnlyWhenConfigured: a probe (shallow job) writes SMTotalFileCount into
// its subfolders' list items only when the simulator is told to (whether AMR does is not
// documented), never a folder count; the values are the tenant's.
func TestManifestFolderTotalsOnlyWhenConfigured(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "configured"}[on], func(t *testing.T) {
			s := newSim(t, tenant.SmallProfile(), func(c *server.Config) { c.ManifestFolderTotals = on })
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			site := s.site("/sites/small")
			docs := "/sites/small/Shared Documents"
			rw := containerSAS(t, map[bool]string{false: "totals-off", true: "totals-on"}[on], sas.ContainerPermissions{Read: true, Write: true})
			info, err := s.client.CreateSPAsyncReadJob(ctx, site, spo.ReadJobRequest{URL: s.http.URL + docs, ManifestContainerURI: rw,
				Options: spo.ReadOptions{IncludeDirectDescendantsOnly: true}})
			if err != nil {
				t.Fatal(err)
			}
			got := folderItemFields(t, ctx, rw, s.events(ctx, site, info.JobID))
			subs, err := s.tenant.Subfolders(docs)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(subs) {
				t.Fatalf("%d folder items, want the %d subfolders", len(got), len(subs))
			}
			for _, f := range subs {
				fields := got[f.ServerRelativeURL]
				want := map[string]string{}
				if on {
					want = map[string]string{"SMTotalFileCount": jsonNumber(f.SMTotalFileCount), "SMTotalSize": jsonNumber(f.SMTotalSize)}
				}
				if len(fields) != len(want) {
					t.Errorf("%s: fields %v, want %v", f.ServerRelativeURL, fields, want)
				}
				for k, v := range want {
					if fields[k] != v {
						t.Errorf("%s: field %s = %q, want %q", f.ServerRelativeURL, k, fields[k], v)
					}
				}
			}
		})
	}
}

// folderItemFields reads the manifests of a job and returns the Fields of every folder's list item
// by the item's server-relative URL.
func folderItemFields(t *testing.T, ctx context.Context, sasURL string, events []map[string]string) map[string]map[string]string {
	t.Helper()
	cc, err := container.NewClientWithNoCredential(sasURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, ev := range events {
		name := ev["ManifestFileName"]
		if ev["Event"] != "FinishManifestFileUpload" || !strings.Contains(name, "/Manifest") {
			continue
		}
		resp, err := cc.NewBlobClient(name).DownloadStream(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		dec := xml.NewDecoder(bytes.NewReader(data))
		var cur map[string]string
		var objURL string
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			se, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			attr := func(n string) string {
				for _, a := range se.Attr {
					if a.Name.Local == n {
						return a.Value
					}
				}
				return ""
			}
			switch se.Name.Local {
			case "SPObject":
				objURL, cur = attr("Url"), nil
			case "ListItem":
				if attr("DocType") == "Folder" {
					cur = map[string]string{}
					out[objURL] = cur
				}
			case "Field":
				if cur != nil {
					cur[attr("Name")] = attr("Value")
				}
			}
		}
	}
	return out
}
