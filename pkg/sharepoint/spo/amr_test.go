package spo_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		ua     string
		tokens spo.TokenSource
		ok     bool
	}{
		{"ISV|Contoso|amrpipe/1.0", spo.StaticToken("t"), true},
		{"NONISV|Contoso Ltd|AMR Pipe/1.2.3-rc1", spo.StaticToken("t"), true},
		{"ISV|Contoso|amrpipe/1.0", nil, false},
		{"amrpipe/1.0", spo.StaticToken("t"), false},
		{"ISV|Contoso|amrpipe", spo.StaticToken("t"), false},
		{"ISV||amrpipe/1.0", spo.StaticToken("t"), false},
		{"VENDOR|Contoso|amrpipe/1.0", spo.StaticToken("t"), false},
		{"ISV|Contoso|amrpipe/1.0|extra", spo.StaticToken("t"), false},
		{"ISV|Contoso\n|amrpipe/1.0", spo.StaticToken("t"), false},
	}
	for _, tt := range tests {
		_, err := spo.New(spo.Options{Tokens: tt.tokens, UserAgent: tt.ua})
		if (err == nil) != tt.ok {
			t.Errorf("New(UserAgent=%q, tokens=%v) err = %v, want ok=%v", tt.ua, tt.tokens != nil, err, tt.ok)
		}
	}
}

func TestCreateReadJobRequestShape(t *testing.T) {
	type call func(c *spo.Client, site string) (spo.ReadJobInfo, error)
	tests := []struct {
		name     string
		call     call
		path     string
		wantBody map[string]any // exact keys and values, after JSON decoding
	}{
		{
			name: "single URL, encrypted, with queue and change token",
			call: func(c *spo.Client, site string) (spo.ReadJobInfo, error) {
				return c.CreateSPAsyncReadJob(context.Background(), site, spo.ReadJobRequest{
					URL:           site + "/Shared Documents",
					Options:       spo.ReadOptions{IncludeVersions: true, IncludePermission: true, StartChangeToken: "1;3;abc;638000000000000000;42"},
					EncryptionKey: testKey, ManifestContainerURI: manifestSAS, QueueURI: queueSAS,
				})
			},
			path: "/sites/hr/_api/site/CreateSPAsyncReadJob",
			wantBody: map[string]any{
				"url": "SITE/Shared Documents",
				"readOptions": map[string]any{"IncludeVersions": true, "IncludeSecurity": false, "IncludePermission": true,
					"IncludeDirectDescendantsOnly": false, "IncludeExtendedMetadata": false, "StartChangeToken": "1;3;abc;638000000000000000;42"},
				"encryptionOption":          map[string]any{"AES256CBCKey": base64.StdEncoding.EncodeToString(testKey)},
				"azureContainerManifestUri": manifestSAS,
				"azureQueueReportUri":       queueSAS,
			},
		},
		{
			name: "multi URL, no encryption, no queue",
			call: func(c *spo.Client, site string) (spo.ReadJobInfo, error) {
				return c.CreateSPAsyncReadJobWithMultiUrl(context.Background(), site, []string{site + "/A", site + "/B/it's"},
					spo.ReadJobRequest{Options: spo.ReadOptions{IncludeDirectDescendantsOnly: true, IncludeSecurity: true}, ManifestContainerURI: manifestSAS})
			},
			path: "/sites/hr/_api/site/CreateSPAsyncReadJobWithMultiUrl",
			wantBody: map[string]any{
				"urls": []any{"SITE/A", "SITE/B/it's"},
				"readOptions": map[string]any{"IncludeVersions": false, "IncludeSecurity": true, "IncludePermission": false,
					"IncludeDirectDescendantsOnly": true, "IncludeExtendedMetadata": false, "StartChangeToken": nil},
				"encryptionOption":          nil,
				"azureContainerManifestUri": manifestSAS,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newFake(t, reply(200, `{"JobId":"3E280EFA-78A3-4BA1-BAC6-E447AA538CA5","CurrentChangeToken":"1;3;abc;1;43"}`))
			info, err := tt.call(newClient(t, nil), sp.site())
			if err != nil {
				t.Fatal(err)
			}
			if want := (spo.ReadJobInfo{JobID: jobID, CurrentChangeToken: "1;3;abc;1;43"}); info != want {
				t.Errorf("info = %+v, want %+v", info, want)
			}
			reqs := sp.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != tt.path {
				t.Errorf("request %s %s, want POST %s", r.Method, r.Path, tt.path)
			}
			wantHeaders := map[string]string{
				"Authorization": "Bearer " + testToken,
				"User-Agent":    testUserAgent,
				"Accept":        "application/json;odata=nometadata",
				"Content-Type":  "application/json;odata=nometadata",
			}
			for k, v := range wantHeaders {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			var got map[string]any
			if err := json.Unmarshal(r.Body, &got); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			want := replaceSite(tt.wantBody, sp.site())
			if !reflect.DeepEqual(got, want) {
				t.Errorf("body keys %v\n got %v\nwant %v", slices.Sorted(maps.Keys(got)), got, want)
			}
		})
	}
}

// replaceSite substitutes the test server's site URL for "SITE" in expected string values.
func replaceSite(m map[string]any, site string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = strings.Replace(v, "SITE", site, 1)
		case []any:
			l := make([]any, len(v))
			for i, s := range v {
				l[i] = strings.Replace(s.(string), "SITE", site, 1)
			}
			out[k] = l
		default:
			out[k] = v
		}
	}
	return out
}

// TestResponseShapes runs every call against its nometadata and its verbose answer.
func TestResponseShapes(t *testing.T) {
	tests := []struct {
		name                string
		nometadata, verbose string
		call                func(c *spo.Client, site string) (any, error)
		want                any
	}{
		{
			name:       "CreateSPAsyncReadJob",
			nometadata: `{"JobId":"` + jobID + `","CurrentChangeToken":"tok"}`,
			verbose:    `{"d":{"CreateSPAsyncReadJob":{"__metadata":{"type":"SP.AsyncReadJobInfo"},"JobId":"` + jobID + `","CurrentChangeToken":"tok"}}}`,
			call: func(c *spo.Client, site string) (any, error) {
				return c.CreateSPAsyncReadJob(context.Background(), site, spo.ReadJobRequest{URL: site + "/Lib", ManifestContainerURI: manifestSAS})
			},
			want: spo.ReadJobInfo{JobID: jobID, CurrentChangeToken: "tok"},
		},
		{
			name:       "CreateSPAsyncReadJob, 2019 collection",
			nometadata: `{"value":[{"JobId":"` + jobID + `","CurrentChangeToken":"tok"}]}`,
			verbose:    `{"d":{"CreateSPAsyncReadJob":{"results":[{"JobId":"` + jobID + `","CurrentChangeToken":"tok"}]}}}`,
			call: func(c *spo.Client, site string) (any, error) {
				return c.CreateSPAsyncReadJob(context.Background(), site, spo.ReadJobRequest{URL: site, ManifestContainerURI: manifestSAS})
			},
			want: spo.ReadJobInfo{JobID: jobID, CurrentChangeToken: "tok"},
		},
		{
			name:       "ProvisionMigrationContainers",
			nometadata: `{"DataContainerUri":"https://a.blob.core.windows.net/d?sig=x","MetadataContainerUri":"https://a.blob.core.windows.net/m?sig=y","EncryptionKey":"` + base64.StdEncoding.EncodeToString(testKey) + `"}`,
			verbose:    `{"d":{"ProvisionMigrationContainers":{"__metadata":{"type":"SP.ProvisionedMigrationContainersInfo"},"DataContainerUri":"https://a.blob.core.windows.net/d?sig=x","MetadataContainerUri":"https://a.blob.core.windows.net/m?sig=y","EncryptionKey":"` + base64.StdEncoding.EncodeToString(testKey) + `"}}}`,
			call: func(c *spo.Client, site string) (any, error) {
				return c.ProvisionMigrationContainers(context.Background(), site)
			},
			want: fmt.Sprint(spo.Containers{DataContainerURI: "https://a.blob.core.windows.net/d?sig=x", MetadataContainerURI: "https://a.blob.core.windows.net/m?sig=y", EncryptionKey: testKey}),
		},
		{
			name:       "GetMigrationJobProgress",
			nometadata: `{"Logs":["{\"Event\":\"JobQueued\"}","{\"Event\":\"JobStart\"}"],"NextToken":"2"}`,
			verbose:    `{"d":{"GetMigrationJobProgress":{"__metadata":{"type":"SP.MigrationJobProgress"},"Logs":{"__metadata":{"type":"Collection(Edm.String)"},"results":["{\"Event\":\"JobQueued\"}","{\"Event\":\"JobStart\"}"]},"NextToken":"2"}}}`,
			call: func(c *spo.Client, site string) (any, error) {
				return c.GetMigrationJobProgress(context.Background(), site, jobID, "")
			},
			want: spo.Progress{Logs: []string{`{"Event":"JobQueued"}`, `{"Event":"JobStart"}`}, NextToken: "2"},
		},
		{
			name:       "GetMigrationJobStatus",
			nometadata: `{"value":4}`,
			verbose:    `{"d":{"GetMigrationJobStatus":4}}`,
			call: func(c *spo.Client, site string) (any, error) {
				return c.GetMigrationJobStatus(context.Background(), site, jobID)
			},
			want: spo.JobProcessing,
		},
		{
			name:       "DeleteMigrationJob",
			nometadata: `{"value":true}`,
			verbose:    `{"d":{"DeleteMigrationJob":true}}`,
			call: func(c *spo.Client, site string) (any, error) {
				return c.DeleteMigrationJob(context.Background(), site, jobID)
			},
			want: true,
		},
		{
			name:       "Web",
			nometadata: `{"Id":"w1","Title":"HR","ServerRelativeUrl":"/sites/hr","Url":"https://x/sites/hr"}`,
			verbose:    `{"d":{"__metadata":{"type":"SP.Web"},"Id":"w1","Title":"HR","ServerRelativeUrl":"/sites/hr","Url":"https://x/sites/hr"}}`,
			call:       func(c *spo.Client, site string) (any, error) { return c.Web(context.Background(), site) },
			want:       spo.Web{ID: "w1", Title: "HR", ServerRelativeURL: "/sites/hr", URL: "https://x/sites/hr"},
		},
		{
			name:       "Subwebs",
			nometadata: `{"value":[{"Id":"w2","Title":"Team","ServerRelativeUrl":"/sites/hr/team","Url":"u"}]}`,
			verbose:    `{"d":{"results":[{"__metadata":{"type":"SP.Web"},"Id":"w2","Title":"Team","ServerRelativeUrl":"/sites/hr/team","Url":"u"}]}}`,
			call:       func(c *spo.Client, site string) (any, error) { return c.Subwebs(context.Background(), site) },
			want:       []spo.Web{{ID: "w2", Title: "Team", ServerRelativeURL: "/sites/hr/team", URL: "u"}},
		},
		{
			name:       "Lists",
			nometadata: `{"value":[{"Id":"l1","Title":"Documents","BaseTemplate":101,"ItemCount":12,"Hidden":false,"RootFolder":{"ServerRelativeUrl":"/sites/hr/Shared Documents"},"CurrentChangeToken":{"StringValue":"1;3;l1;638;1000"}}]}`,
			verbose:    `{"d":{"results":[{"__metadata":{"type":"SP.List"},"Id":"l1","Title":"Documents","BaseTemplate":101,"ItemCount":12,"Hidden":false,"RootFolder":{"__metadata":{"type":"SP.Folder"},"ServerRelativeUrl":"/sites/hr/Shared Documents"},"CurrentChangeToken":{"__metadata":{"type":"SP.ChangeToken"},"StringValue":"1;3;l1;638;1000"}}]}}`,
			call:       func(c *spo.Client, site string) (any, error) { return c.Lists(context.Background(), site) },
			want:       []spo.List{{ID: "l1", Title: "Documents", BaseTemplate: 101, ItemCount: 12, RootFolderURL: "/sites/hr/Shared Documents", ChangeToken: "1;3;l1;638;1000"}},
		},
		{
			name:       "Folder",
			nometadata: `{"Name":"2024","ServerRelativeUrl":"/sites/hr/Shared Documents/2024","ItemCount":3,"UniqueId":"f1"}`,
			verbose:    `{"d":{"__metadata":{"type":"SP.Folder"},"Name":"2024","ServerRelativeUrl":"/sites/hr/Shared Documents/2024","ItemCount":3,"UniqueId":"f1"}}`,
			call: func(c *spo.Client, site string) (any, error) {
				return c.Folder(context.Background(), site, "/sites/hr/Shared Documents/2024")
			},
			want: spo.Folder{Name: "2024", ServerRelativeURL: "/sites/hr/Shared Documents/2024", ItemCount: 3, UniqueID: "f1"},
		},
		{
			name:       "Subfolders",
			nometadata: `{"value":[{"Name":"a","ServerRelativeUrl":"/x/a","ItemCount":1,"UniqueId":"f2"},{"Name":"b","ServerRelativeUrl":"/x/b","ItemCount":0,"UniqueId":"f3"}]}`,
			verbose:    `{"d":{"results":[{"Name":"a","ServerRelativeUrl":"/x/a","ItemCount":1,"UniqueId":"f2"},{"Name":"b","ServerRelativeUrl":"/x/b","ItemCount":0,"UniqueId":"f3"}]}}`,
			call:       func(c *spo.Client, site string) (any, error) { return c.Subfolders(context.Background(), site, "/x") },
			want:       []spo.Folder{{Name: "a", ServerRelativeURL: "/x/a", ItemCount: 1, UniqueID: "f2"}, {Name: "b", ServerRelativeURL: "/x/b", UniqueID: "f3"}},
		},
		{
			name:       "FolderTotals",
			nometadata: `{"ItemCount":3,"StorageMetrics":{"TotalFileCount":7,"TotalSize":1048576,"TotalFileStreamSize":1000000,"LastModified":"2024-01-17T16:01:48Z"}}`,
			verbose:    `{"d":{"__metadata":{"type":"SP.Folder"},"ItemCount":3,"StorageMetrics":{"__metadata":{"type":"SP.StorageMetrics"},"TotalFileCount":"7","TotalSize":"1048576"}}}`,
			call:       func(c *spo.Client, site string) (any, error) { return c.FolderTotals(context.Background(), site, "/x") },
			want:       spo.Totals{FileCount: 7, Size: 1048576, ItemCount: 3, Known: true, Source: spo.SourceStorageMetrics},
		},
	}
	for _, tt := range tests {
		for _, shape := range []string{"nometadata", "verbose"} {
			t.Run(tt.name+"/"+shape, func(t *testing.T) {
				body := tt.nometadata
				if shape == "verbose" {
					body = tt.verbose
				}
				sp := newFake(t, reply(200, body))
				got, err := tt.call(newClient(t, nil), sp.site())
				if err != nil {
					t.Fatal(err)
				}
				if c, ok := got.(spo.Containers); ok {
					if !slices.Equal(c.EncryptionKey, testKey) {
						t.Errorf("key not decoded")
					}
					got = fmt.Sprint(c)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got  %+v\nwant %+v", got, tt.want)
				}
			})
		}
	}
}

func TestProgressFixtures(t *testing.T) {
	t.Run("200 verbose sample", func(t *testing.T) {
		sp := newFake(t, reply(200, string(readFixture(t, "GetMigrationJobProgress.200.json"))))
		p, err := newClient(t, nil).GetMigrationJobProgress(context.Background(), sp.site(), jobID, "0")
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Split(string(readFixture(t, "GetMigrationJobProgress.200.events.jsonl")), "\n")
		if !slices.Equal(p.Logs, want) {
			t.Errorf("logs differ from the sample's events:\n got %q\nwant %q", p.Logs, want)
		}
		if p.NextToken != "1764" {
			t.Errorf("NextToken = %q, want 1764", p.NextToken)
		}
		var ev map[string]string // every value of an event is a string
		if err := json.Unmarshal([]byte(p.Logs[3]), &ev); err != nil || ev["Event"] != "JobEnd" {
			t.Errorf("last event = %v (%v), want JobEnd", ev["Event"], err)
		}
	})
	t.Run("500 job not found", func(t *testing.T) {
		sp := newFake(t, reply(500, string(readFixture(t, "GetMigrationJobProgress.500.json"))))
		_, err := newClient(t, nil).GetMigrationJobProgress(context.Background(), sp.site(), jobID, "1764")
		var e *spo.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want *spo.Error", err)
		}
		want := spo.Error{Status: 500, Code: spo.CodeJobNotFound, Type: "Microsoft.SharePoint.SPException", Message: "Job not found",
			Method: "GetMigrationJobProgress", Site: sp.site()}
		if e.Status != want.Status || e.Code != want.Code || e.Type != want.Type || e.Message != want.Message || e.Method != want.Method || e.Site != want.Site {
			t.Errorf("got %#v\nwant %#v", *e, want)
		}
		if !errors.Is(err, spo.ErrJobNotFound) || e.Throttled() {
			t.Errorf("Is(ErrJobNotFound)=%v Throttled=%v; want true, false", errors.Is(err, spo.ErrJobNotFound), e.Throttled())
		}
		wantText := "get migration job progress on " + sp.site() + ": HTTP 500 code -2147213145 (Microsoft.SharePoint.SPException): Job not found"
		if err.Error() != wantText {
			t.Errorf("Error()\n got %q\nwant %q", err.Error(), wantText)
		}
	})
}

// TestProgressPaging follows the cursor across calls like the progress-relay does: first call
// "0", then each returned token, the same token coming back while nothing is new.
func TestProgressPaging(t *testing.T) {
	events := []string{`{"Event":"JobQueued"}`, `{"Event":"JobStart"}`, `{"Event":"FinishManifestFileUpload"}`, `{"Event":"JobEnd"}`}
	// Each call reveals up to two more events, and an empty page after the second call.
	visible := []int{2, 2, 4, 4}
	call := 0
	sp := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		var from int
		if _, err := fmt.Sscanf(r.URL.Path, "/sites/hr/_api/site/GetMigrationJobProgress(jobId='"+jobID+"',nextToken=%d)", &from); err != nil {
			t.Errorf("path %q: %v", r.URL.Path, err)
		}
		to := visible[min(call, len(visible)-1)]
		call++
		page := events[min(from, to):to]
		logs, _ := json.Marshal(page)
		fmt.Fprintf(w, `{"Logs":%s,"NextToken":"%d"}`, logs, to)
	})
	c := newClient(t, nil)
	var got []string
	token := ""
	var tokens []string
	for range 4 {
		p, err := c.GetMigrationJobProgress(context.Background(), sp.site(), strings.ToUpper(jobID), token)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Logs...)
		token = p.NextToken
		tokens = append(tokens, token)
	}
	if !slices.Equal(got, events) {
		t.Errorf("events = %q, want each exactly once: %q", got, events)
	}
	if want := []string{"2", "2", "4", "4"}; !slices.Equal(tokens, want) {
		t.Errorf("tokens = %v, want %v", tokens, want)
	}
	var sent []string
	for _, r := range sp.requests() {
		sent = append(sent, r.URI[strings.LastIndex(r.URI, "=")+1:])
	}
	if want := []string{"0)", "2)", "2)", "4)"}; !slices.Equal(sent, want) {
		t.Errorf("nextToken sent = %v, want %v", sent, want)
	}
}

func TestProgressTokenForms(t *testing.T) {
	tests := []struct{ token, wantURI string }{
		{"", "/sites/hr/_api/site/GetMigrationJobProgress(jobId='" + jobID + "',nextToken=0)"},
		{"1764", "/sites/hr/_api/site/GetMigrationJobProgress(jobId='" + jobID + "',nextToken=1764)"},
		{"a'b c", "/sites/hr/_api/site/GetMigrationJobProgress(jobId='" + jobID + "',nextToken='a''b%20c')"},
	}
	for _, tt := range tests {
		// An answer without NextToken keeps the caller's cursor rather than restarting at 0.
		sp := newFake(t, reply(200, `{"Logs":[]}`))
		p, err := newClient(t, nil).GetMigrationJobProgress(context.Background(), sp.site(), "{"+jobID+"}", tt.token)
		if err != nil {
			t.Fatal(err)
		}
		if got := sp.requests()[0].URI; got != tt.wantURI {
			t.Errorf("token %q: URI\n got %s\nwant %s", tt.token, got, tt.wantURI)
		}
		if want := cmpOr(tt.token, "0"); p.NextToken != want {
			t.Errorf("token %q: NextToken = %q, want %q", tt.token, p.NextToken, want)
		}
	}
}

// TestAcceptHeaders: GetMigrationJobProgress asks for odata=verbose, the header its documentation
// lists as required; every other call asks for nometadata. Both answer shapes parse either way.
func TestAcceptHeaders(t *testing.T) {
	tests := []struct {
		name, body, want string
		call             func(c *spo.Client, site string) error
	}{
		{"progress", `{"d":{"GetMigrationJobProgress":{"Logs":{"results":[]},"NextToken":"3"}}}`, "application/json;odata=verbose",
			func(c *spo.Client, site string) error {
				_, err := c.GetMigrationJobProgress(context.Background(), site, jobID, "")
				return err
			}},
		{"progress answered in nometadata", `{"Logs":[],"NextToken":"3"}`, "application/json;odata=verbose",
			func(c *spo.Client, site string) error {
				_, err := c.GetMigrationJobProgress(context.Background(), site, jobID, "")
				return err
			}},
		{"status", `{"value":4}`, "application/json;odata=nometadata",
			func(c *spo.Client, site string) error {
				_, err := c.GetMigrationJobStatus(context.Background(), site, jobID)
				return err
			}},
		{"lists", `{"value":[]}`, "application/json;odata=nometadata",
			func(c *spo.Client, site string) error { _, err := c.Lists(context.Background(), site); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newFake(t, reply(200, tt.body))
			if err := tt.call(newClient(t, nil), sp.site()); err != nil {
				t.Fatal(err)
			}
			if got := sp.requests()[0].Header.Get("Accept"); got != tt.want {
				t.Errorf("Accept = %q, want %q", got, tt.want)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestJobActionsRequestShape(t *testing.T) {
	sp := newFake(t, reply(200, `{"value":2}`))
	c := newClient(t, nil)
	st, err := c.GetMigrationJobStatus(context.Background(), sp.site(), strings.ToUpper(jobID))
	if err != nil || st != spo.JobQueued || st.String() != "Queued" {
		t.Fatalf("status = %v, %v; want Queued", st, err)
	}
	r := sp.requests()[0]
	if r.Method != "POST" || r.Path != "/sites/hr/_api/site/GetMigrationJobStatus" || strings.TrimSpace(string(r.Body)) != `{"id":"`+jobID+`"}` {
		t.Errorf("request = %s %s %s", r.Method, r.Path, r.Body)
	}
	for _, s := range []struct {
		st   spo.JobState
		want string
	}{{spo.JobNone, "None"}, {spo.JobProcessing, "Processing"}, {7, "JobState(7)"}} {
		if s.st.String() != s.want {
			t.Errorf("JobState(%d).String() = %q, want %q", int(s.st), s.st.String(), s.want)
		}
	}
}

func TestProvisionRejectsBadKey(t *testing.T) {
	for _, key := range []string{"bm90LTMyLWJ5dGVz", "%%%"} {
		sp := newFake(t, reply(200, `{"DataContainerUri":"https://a.blob.core.windows.net/d?sig=x","MetadataContainerUri":"https://a.blob.core.windows.net/m?sig=y","EncryptionKey":"`+key+`"}`))
		_, err := newClient(t, nil).ProvisionMigrationContainers(context.Background(), sp.site())
		var se *spo.Error
		if err == nil || errors.As(err, &se) {
			t.Errorf("key %q: err = %v, want the client's own refusal of the answer", key, err)
		}
		if r := sp.requests()[0]; r.Method != "POST" || strings.TrimSpace(string(r.Body)) != "{}" {
			t.Errorf("request %s %q, want POST {}", r.Method, r.Body)
		}
	}
}

// TestRefusedBeforeSending: requests SharePoint would refuse never leave the process.
func TestRefusedBeforeSending(t *testing.T) {
	sp := newFake(t, reply(200, `{}`))
	site := sp.site()
	tooMany := make([]string, spo.MaxURLsPerJob+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("%s/Lib/f%d", site, i)
	}
	rwl := strings.Replace(manifestSAS, "sp=rw", "sp=rwl", 1)
	ok := spo.ReadJobRequest{URL: site + "/Lib", ManifestContainerURI: manifestSAS}
	with := func(f func(*spo.ReadJobRequest)) spo.ReadJobRequest { r := ok; f(&r); return r }
	tests := []struct {
		name   string
		call   func(c *spo.Client) error
		wantIs error
	}{
		{"manifest SAS with List", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJob(context.Background(), site, with(func(r *spo.ReadJobRequest) { r.ManifestContainerURI = rwl }))
			return err
		}, sas.ErrExtraPermissions},
		{"manifest SAS expired", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJob(context.Background(), site, with(func(r *spo.ReadJobRequest) {
				r.ManifestContainerURI = strings.Replace(manifestSAS, "2099", "2001", 1)
			}))
			return err
		}, sas.ErrExpired},
		{"no manifest SAS", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJob(context.Background(), site, with(func(r *spo.ReadJobRequest) { r.ManifestContainerURI = "" }))
			return err
		}, sas.ErrInvalidURL},
		{"queue SAS without Add", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJob(context.Background(), site, with(func(r *spo.ReadJobRequest) { r.QueueURI = strings.Replace(queueSAS, "sp=a", "sp=rp", 1) }))
			return err
		}, sas.ErrMissingPermission},
		{"31-byte key", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJob(context.Background(), site, with(func(r *spo.ReadJobRequest) { r.EncryptionKey = testKey[:31] }))
			return err
		}, spo.ErrInvalidRequest},
		{"URL on another site", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJob(context.Background(), site, with(func(r *spo.ReadJobRequest) { r.URL = sp.URL + "/sites/hrx/Lib" }))
			return err
		}, spo.ErrInvalidRequest},
		{"relative URL", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJob(context.Background(), site, with(func(r *spo.ReadJobRequest) { r.URL = "/sites/hr/Lib" }))
			return err
		}, spo.ErrInvalidRequest},
		{"5001 URLs", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJobWithMultiUrl(context.Background(), site, tooMany, spo.ReadJobRequest{ManifestContainerURI: manifestSAS})
			return err
		}, spo.ErrInvalidRequest},
		{"no URLs", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJobWithMultiUrl(context.Background(), site, nil, spo.ReadJobRequest{ManifestContainerURI: manifestSAS})
			return err
		}, spo.ErrInvalidRequest},
		{"empty URL in batch", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJobWithMultiUrl(context.Background(), site, []string{site + "/A", ""}, spo.ReadJobRequest{ManifestContainerURI: manifestSAS})
			return err
		}, spo.ErrInvalidRequest},
		{"multi with URL set", func(c *spo.Client) error {
			_, err := c.CreateSPAsyncReadJobWithMultiUrl(context.Background(), site, []string{site + "/A"}, ok)
			return err
		}, spo.ErrInvalidRequest},
		{"site with query", func(c *spo.Client) error {
			_, err := c.ProvisionMigrationContainers(context.Background(), site+"?x=1")
			return err
		}, spo.ErrInvalidRequest},
		{"relative site", func(c *spo.Client) error {
			_, err := c.Web(context.Background(), "/sites/hr")
			return err
		}, spo.ErrInvalidRequest},
		{"job id not a GUID", func(c *spo.Client) error {
			_, err := c.GetMigrationJobProgress(context.Background(), site, "x',nextToken=9)/../../x", "")
			return err
		}, spo.ErrInvalidRequest},
		{"job id not a GUID (delete)", func(c *spo.Client) error {
			_, err := c.DeleteMigrationJob(context.Background(), site, "")
			return err
		}, spo.ErrInvalidRequest},
	}
	c := newClient(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(c)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want %v", err, tt.wantIs)
			}
		})
	}
	if n := len(sp.requests()); n != 0 {
		t.Errorf("SharePoint saw %d requests, want 0", n)
	}
	// The exact text a user reads for the commonest mistake.
	_, err := c.CreateSPAsyncReadJob(context.Background(), site, with(func(r *spo.ReadJobRequest) { r.ManifestContainerURI = rwl }))
	want := "create read job on " + site + ": manifest container SAS for acct/manifests has permissions rwl; SharePoint requires exactly rw (Read and Write)"
	if err.Error() != want {
		t.Errorf("Error()\n got %q\nwant %q", err, want)
	}
}

func TestMultiURLAtLimitIsSent(t *testing.T) {
	sp := newFake(t, reply(200, `{"JobId":"`+jobID+`","CurrentChangeToken":"t"}`))
	urls := make([]string, spo.MaxURLsPerJob)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/Lib/f%d", sp.site(), i)
	}
	if _, err := newClient(t, nil).CreateSPAsyncReadJobWithMultiUrl(context.Background(), sp.site(), urls, spo.ReadJobRequest{ManifestContainerURI: manifestSAS}); err != nil {
		t.Fatal(err)
	}
	var body struct{ URLs []string }
	if err := json.Unmarshal(sp.requests()[0].Body, &body); err != nil || len(body.URLs) != spo.MaxURLsPerJob {
		t.Errorf("sent %d URLs (%v), want %d", len(body.URLs), err, spo.MaxURLsPerJob)
	}
}
