package spo_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

func TestFolderRequestPaths(t *testing.T) {
	const sel = "?$select=Name,ServerRelativeUrl,ItemCount,UniqueId"
	const fn = "/sites/hr/team/_api/web/GetFolderByServerRelativePath(DecodedUrl="
	tests := []struct {
		name string
		call func(c *spo.Client, web string) error
		uri  string // as sent on the wire
		path string // as a server decodes it
	}{
		{
			name: "web",
			call: func(c *spo.Client, web string) error { _, err := c.Web(context.Background(), web+"/"); return err },
			uri:  "/sites/hr/team/_api/web?$select=Id,Title,ServerRelativeUrl,Url",
		},
		{
			name: "subwebs",
			call: func(c *spo.Client, web string) error { _, err := c.Subwebs(context.Background(), web); return err },
			uri:  "/sites/hr/team/_api/web/webs?$select=Id,Title,ServerRelativeUrl,Url",
		},
		{
			name: "lists",
			call: func(c *spo.Client, web string) error { _, err := c.Lists(context.Background(), web); return err },
			uri:  "/sites/hr/team/_api/web/lists?$select=Id,Title,BaseTemplate,ItemCount,Hidden,RootFolder/ServerRelativeUrl,CurrentChangeToken&$expand=RootFolder",
		},
		{
			name: "folder with quote, space, hash, percent",
			call: func(c *spo.Client, web string) error {
				_, err := c.Folder(context.Background(), web, "/sites/hr/team/Shared Documents/Bob's #1 100%")
				return err
			},
			uri:  fn + "'/sites/hr/team/Shared%20Documents/Bob''s%20%231%20100%25')" + sel,
			path: fn + "'/sites/hr/team/Shared Documents/Bob''s #1 100%')",
		},
		{
			name: "subfolders, path without leading slash",
			call: func(c *spo.Client, web string) error {
				_, err := c.Subfolders(context.Background(), web, "sites/hr/team/Lib/it's")
				return err
			},
			uri:  fn + "'/sites/hr/team/Lib/it''s')/Folders" + sel + ",StorageMetrics&$expand=StorageMetrics",
			path: fn + "'/sites/hr/team/Lib/it''s')/Folders",
		},
		{
			name: "totals",
			call: func(c *spo.Client, web string) error {
				_, err := c.FolderTotals(context.Background(), web, "/sites/hr/team/Lib/a&b+c")
				return err
			},
			uri:  fn + "'/sites/hr/team/Lib/a&b+c')?$select=ItemCount,StorageMetrics&$expand=StorageMetrics",
			path: fn + "'/sites/hr/team/Lib/a&b+c')",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				if strings.HasSuffix(r.URL.Path, "webs") || strings.HasSuffix(r.URL.Path, "lists") || strings.HasSuffix(r.URL.Path, "Folders") {
					fmt.Fprint(w, `{"value":[]}`)
					return
				}
				fmt.Fprint(w, `{}`)
			})
			if err := tt.call(newClient(t, nil), sp.URL+"/sites/hr/team"); err != nil {
				t.Fatal(err)
			}
			r := sp.requests()[0]
			if r.Method != http.MethodGet || r.URI != tt.uri {
				t.Errorf("request\n got %s %s\nwant GET %s", r.Method, r.URI, tt.uri)
			}
			if tt.path != "" && r.Path != tt.path {
				t.Errorf("decoded path\n got %s\nwant %s", r.Path, tt.path)
			}
			if r.Header.Get("Content-Type") != "" {
				t.Errorf("GET carries Content-Type %q", r.Header.Get("Content-Type"))
			}
		})
	}
}

// totalsFake answers the folder (StorageMetrics) request with folder and the folder item
// (ListItemAllFields) request with item; a status of 0 is 200.
func totalsFake(t *testing.T, folder, item reply2) *fakeSP {
	t.Helper()
	return newFake(t, func(w http.ResponseWriter, r *http.Request, b []byte) {
		rp := folder
		if strings.HasSuffix(r.URL.Path, "/ListItemAllFields") {
			rp = item
		}
		if strings.Contains(r.URL.RawQuery, "StorageMetrics") && rp.refused != "" {
			reply(400, rp.refused)(w, r, b)
			return
		}
		reply(cmp.Or(rp.status, 200), rp.body)(w, r, b)
	})
}

// reply2 is an answer of totalsFake: body with status, or refused (a 400 body) when the request
// names StorageMetrics.
type reply2 struct {
	status        int
	body, refused string
}

func TestFolderTotalsForms(t *testing.T) {
	const path = "/sites/hr/_api/web/GetFolderByServerRelativePath(DecodedUrl='/sites/hr/Lib/a')"
	metrics := path + "?$select=ItemCount,StorageMetrics&$expand=StorageMetrics"
	item := path + "/ListItemAllFields?$select=SMTotalFileCount"
	tests := []struct {
		name         string
		folder, item string
		want         spo.Totals
		wantURIs     []string
	}{
		{"storage metrics", `{"ItemCount":31,"StorageMetrics":{"TotalFileCount":40,"TotalSize":4096,"LastModified":"2024-01-17T16:01:48Z"}}`, "",
			spo.Totals{FileCount: 40, Size: 4096, ItemCount: 31, Known: true, Source: spo.SourceStorageMetrics}, []string{metrics}},
		{"verbose, Int64 as strings", `{"d":{"__metadata":{"type":"SP.Folder"},"ItemCount":"31","StorageMetrics":{"__metadata":{"type":"SP.StorageMetrics"},"TotalFileCount":"40","TotalSize":"9007199254740993"}}}`, "",
			spo.Totals{FileCount: 40, Size: 9007199254740993, ItemCount: 31, Known: true, Source: spo.SourceStorageMetrics}, []string{metrics}},
		{"empty folder", `{"ItemCount":0,"StorageMetrics":{"TotalFileCount":0,"TotalSize":0}}`, "",
			spo.Totals{Known: true, Source: spo.SourceStorageMetrics}, []string{metrics}},
		{"no metrics: the item's SMTotalFileCount", `{"ItemCount":31}`, `{"SMTotalFileCount":12}`,
			spo.Totals{FileCount: 12, ItemCount: 31, Known: true, Source: spo.SourceSMTotalFileCount}, []string{metrics, item}},
		{"null file count: the item's lookup value", `{"ItemCount":31,"StorageMetrics":{"TotalFileCount":null}}`, `{"SMTotalFileCount":{"LookupId":5,"LookupValue":"12"}}`,
			spo.Totals{FileCount: 12, ItemCount: 31, Known: true, Source: spo.SourceSMTotalFileCount}, []string{metrics, item}},
		{"lookup without value", `{}`, `{"SMTotalFileCount":{"LookupId":12}}`,
			spo.Totals{FileCount: 12, Known: true, Source: spo.SourceSMTotalFileCount}, []string{metrics, item}},
		{"float-encoded", `{"StorageMetrics":{"TotalFileCount":1.2e3}}`, "",
			spo.Totals{FileCount: 1200, Known: true, Source: spo.SourceStorageMetrics}, []string{metrics}},
		{"nothing known", `{"ItemCount":2}`, `{}`, spo.Totals{ItemCount: 2}, []string{metrics, item}},
		{"nulls", `{"ItemCount":null,"StorageMetrics":null}`, `{"SMTotalFileCount":null}`, spo.Totals{}, []string{metrics, item}},
		{"garbage", `{"StorageMetrics":{"TotalFileCount":"many"}}`, `{"SMTotalFileCount":true}`, spo.Totals{}, []string{metrics, item}},
		{"verbose, deferred", `{"d":{"StorageMetrics":{"__deferred":{"uri":"x"}}}}`, `{"d":{"SMTotalFileCount":{"__deferred":{"uri":"x"}}}}`,
			spo.Totals{}, []string{metrics, item}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := totalsFake(t, reply2{body: tt.folder}, reply2{body: tt.item})
			got, err := newClient(t, nil).FolderTotals(context.Background(), sp.site(), "/sites/hr/Lib/a")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if uris := requestURIs(sp); !slices.Equal(uris, tt.wantURIs) {
				t.Errorf("requests\n got %q\nwant %q", uris, tt.wantURIs)
			}
		})
	}
}

func requestURIs(sp *fakeSP) []string {
	var out []string
	for _, r := range sp.requests() {
		out = append(out, r.URI)
	}
	return out
}

// SharePoint's answer to a $select naming a field or property the entity does not have
// (docs/amr-protocol.md §5.4), in both OData shapes, and its lookup-field variant.
func notExist(field string) string {
	return `{"odata.error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"The field or property '` + field + `' does not exist."}}}`
}

func notExistVerbose(field string) string {
	return `{"error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"The field or property '` + field + `' does not exist."}}}`
}

const lookupRefused = `{"odata.error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"The query to field 'SMTotalFileCount' is not valid. The $select query string must specify the target fields and the $expand query string must contains SMTotalFileCount."}}}`

// TestFolderTotalsDropsARefusedOptionalField: SharePoint's 400 for a field it does not have is
// answered by asking once more without it, and the totals are unknown rather than an error; any
// other error, another 400 included, is returned after one request.
func TestFolderTotalsDropsARefusedOptionalField(t *testing.T) {
	const path = "/sites/hr/_api/web/GetFolderByServerRelativePath(DecodedUrl='/sites/hr/Lib/a')"
	metrics := path + "?$select=ItemCount,StorageMetrics&$expand=StorageMetrics"
	itemCount := path + "?$select=ItemCount"
	item := path + "/ListItemAllFields?$select=SMTotalFileCount"
	tests := []struct {
		name         string
		folder, item reply2
		want         spo.Totals
		wantURIs     []string
		wantStatus   int // the *spo.Error's status; 0: no error
	}{
		{name: "no StorageMetrics: asked again without it, then SMTotalFileCount",
			folder: reply2{refused: notExist("StorageMetrics"), body: `{"ItemCount":3}`}, item: reply2{body: `{"SMTotalFileCount":12}`},
			want:     spo.Totals{FileCount: 12, ItemCount: 3, Known: true, Source: spo.SourceSMTotalFileCount},
			wantURIs: []string{metrics, itemCount, item}},
		{name: "neither field: totals unknown, no error",
			folder: reply2{refused: notExist("StorageMetrics"), body: `{"ItemCount":3}`}, item: reply2{status: 400, body: notExist("SMTotalFileCount")},
			want: spo.Totals{ItemCount: 3}, wantURIs: []string{metrics, itemCount, item}},
		{name: "verbose refusal",
			folder: reply2{refused: notExistVerbose("StorageMetrics"), body: `{"d":{"ItemCount":"3"}}`}, item: reply2{status: 400, body: notExistVerbose("SMTotalFileCount")},
			want: spo.Totals{ItemCount: 3}, wantURIs: []string{metrics, itemCount, item}},
		{name: "lookup field that wants $expand: unknown",
			folder: reply2{body: `{"ItemCount":3}`}, item: reply2{status: 400, body: lookupRefused},
			want: spo.Totals{ItemCount: 3}, wantURIs: []string{metrics, item}},
		{name: "localised refusal naming the field",
			folder: reply2{refused: `{"odata.error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"lang":"de-DE","value":"Das Feld oder die Eigenschaft 'StorageMetrics' ist nicht vorhanden."}}}`, body: `{"ItemCount":3}`},
			item:   reply2{body: `{"SMTotalFileCount":5}`},
			want:   spo.Totals{FileCount: 5, ItemCount: 3, Known: true, Source: spo.SourceSMTotalFileCount}, wantURIs: []string{metrics, itemCount, item}},
		{name: "another 400 is not retried",
			folder:     reply2{status: 400, body: `{"odata.error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"Invalid request."}}}`},
			wantURIs:   []string{metrics},
			wantStatus: 400},
		{name: "a 400 refusing a required field is not retried",
			folder: reply2{status: 400, body: notExist("ItemCount")}, wantURIs: []string{metrics}, wantStatus: 400},
		{name: "a 400 without a body is not retried",
			folder: reply2{status: 400}, wantURIs: []string{metrics}, wantStatus: 400},
		{name: "refused again without the field: the error, after one retry",
			folder: reply2{refused: notExist("StorageMetrics"), status: 400, body: notExist("ItemCount")}, wantURIs: []string{metrics, itemCount}, wantStatus: 400},
		{name: "another 400 of the folder item is returned",
			folder: reply2{body: `{}`}, item: reply2{status: 400, body: `{"odata.error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"value":"Bad query."}}}`},
			wantURIs: []string{metrics, item}, wantStatus: 400},
		{name: "missing folder", folder: reply2{status: 404, body: `{"odata.error":{"code":"-2147024894, System.IO.FileNotFoundException","message":{"value":"File Not Found."}}}`},
			wantURIs: []string{metrics}, wantStatus: 404},
		{name: "throttled", folder: reply2{status: 429}, wantURIs: []string{metrics}, wantStatus: 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := totalsFake(t, tt.folder, tt.item)
			var observed []int
			c := newClient(t, func(o spo.Observation) { observed = append(observed, o.Status) })
			got, err := c.FolderTotals(context.Background(), sp.site(), "/sites/hr/Lib/a")
			var se *spo.Error
			switch {
			case tt.wantStatus == 0 && err != nil:
				t.Fatalf("err = %v, want totals", err)
			case tt.wantStatus != 0 && (!errors.As(err, &se) || se.Status != tt.wantStatus):
				t.Fatalf("err = %v, want an *spo.Error with status %d", err, tt.wantStatus)
			case got != tt.want:
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if uris := requestURIs(sp); !slices.Equal(uris, tt.wantURIs) {
				t.Errorf("requests\n got %q\nwant %q", uris, tt.wantURIs)
			}
			if len(observed) != len(tt.wantURIs) {
				t.Errorf("observer saw %d responses, want one per request (%d)", len(observed), len(tt.wantURIs))
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("error text carries the token: %v", err)
			}
		})
	}
}

// TestSubfoldersCarryStorageMetrics: a subfolder listing asks for each folder's StorageMetrics and
// returns its totals; on a 400 it lists once more without them, and a host whose plain listing
// then worked is listed plainly from then on (one extra request per host, not per listing).
func TestSubfoldersCarryStorageMetrics(t *testing.T) {
	const folders = "/sites/hr/_api/web/GetFolderByServerRelativePath(DecodedUrl='/sites/hr/Lib')/Folders"
	const plain = folders + "?$select=Name,ServerRelativeUrl,ItemCount,UniqueId"
	const expanded = plain + ",StorageMetrics&$expand=StorageMetrics"
	const listing = `{"value":[{"Name":"a","ServerRelativeUrl":"/sites/hr/Lib/a","ItemCount":3,"UniqueId":"u1",` +
		`"StorageMetrics":{"TotalFileCount":"40","TotalSize":1000}},{"Name":"b","ServerRelativeUrl":"/sites/hr/Lib/b","ItemCount":2,"UniqueId":"u2"}]}`
	const plainListing = `{"value":[{"Name":"a","ServerRelativeUrl":"/sites/hr/Lib/a","ItemCount":3,"UniqueId":"u1"}]}`
	a := spo.Folder{Name: "a", ServerRelativeURL: "/sites/hr/Lib/a", ItemCount: 3, UniqueID: "u1"}
	aTotals := a
	aTotals.Totals = spo.Totals{FileCount: 40, Size: 1000, ItemCount: 3, Known: true, Source: spo.SourceStorageMetrics}
	tests := []struct {
		name       string
		expanded   reply2 // the answer to the expanded listing (refused: a 400 body)
		plain      reply2
		want       []spo.Folder
		wantStatus int
		// wantURIs are the requests of two listings in a row on one client.
		wantURIs []string
		// wantPlain: the client no longer asks the host for StorageMetrics.
		wantPlain bool
	}{
		{name: "totals where the listing gave them", expanded: reply2{body: listing},
			want:     []spo.Folder{aTotals, {Name: "b", ServerRelativeURL: "/sites/hr/Lib/b", ItemCount: 2, UniqueID: "u2"}},
			wantURIs: []string{expanded, expanded}},
		{name: "refused expansion: listed without it, and so from then on",
			expanded: reply2{refused: notExist("StorageMetrics")}, plain: reply2{body: plainListing},
			want: []spo.Folder{a}, wantURIs: []string{expanded, plain, plain}, wantPlain: true},
		{name: "any 400 to the expansion is answered by the plain listing",
			expanded: reply2{refused: `{"odata.error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"value":"The query is not valid."}}}`},
			plain:    reply2{body: plainListing}, want: []spo.Folder{a}, wantURIs: []string{expanded, plain, plain}, wantPlain: true},
		{name: "the plain listing refused too: the error, and the expansion is asked again",
			expanded: reply2{refused: notExist("StorageMetrics")}, plain: reply2{status: 400, body: notExist("UniqueId")},
			wantStatus: 400, wantURIs: []string{expanded, plain, expanded, plain}},
		{name: "missing folder: no second request",
			expanded:   reply2{status: 404, body: `{"odata.error":{"code":"-2147024894, System.IO.FileNotFoundException","message":{"value":"File Not Found."}}}`},
			wantStatus: 404, wantURIs: []string{expanded, expanded}},
		{name: "throttled: no second request", expanded: reply2{status: 429}, wantStatus: 429, wantURIs: []string{expanded, expanded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newFake(t, func(w http.ResponseWriter, r *http.Request, b []byte) {
				rp := tt.plain
				if strings.Contains(r.URL.RawQuery, "StorageMetrics") {
					rp = tt.expanded
				}
				if rp.refused != "" {
					reply(400, rp.refused)(w, r, b)
					return
				}
				reply(cmp.Or(rp.status, 200), rp.body)(w, r, b)
			})
			c := newClient(t, nil)
			for range 2 {
				got, err := c.Subfolders(context.Background(), sp.site(), "/sites/hr/Lib")
				var se *spo.Error
				switch {
				case tt.wantStatus == 0 && err != nil:
					t.Fatalf("err = %v, want folders", err)
				case tt.wantStatus != 0 && (!errors.As(err, &se) || se.Status != tt.wantStatus):
					t.Fatalf("err = %v, want an *spo.Error with status %d", err, tt.wantStatus)
				case !reflect.DeepEqual(got, tt.want):
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
			}
			if uris := requestURIs(sp); !slices.Equal(uris, tt.wantURIs) {
				t.Errorf("requests\n got %q\nwant %q", uris, tt.wantURIs)
			}
			if got := c.ListsFolderTotals(sp.site()); got == tt.wantPlain {
				t.Errorf("ListsFolderTotals = %v, want %v", got, !tt.wantPlain)
			}
		})
	}
}

// TestCollectionPaging follows continuation links of both shapes, only on the same host.
func TestCollectionPaging(t *testing.T) {
	for _, shape := range []string{"nometadata", "verbose"} {
		t.Run(shape, func(t *testing.T) {
			var sp *fakeSP
			sp = newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				page := r.URL.Query().Get("p")
				next := map[string]string{"": sp.URL + "/sites/hr/_api/web/webs?p=2", "2": "/sites/hr/_api/web/webs?p=3", "3": ""}[page]
				item := fmt.Sprintf(`{"Id":"w%s","Title":"t","ServerRelativeUrl":"/s","Url":"u"}`, page)
				switch {
				case shape == "verbose" && next != "":
					fmt.Fprintf(w, `{"d":{"results":[%s],"__next":%q}}`, item, next)
				case shape == "verbose":
					fmt.Fprintf(w, `{"d":{"results":[%s]}}`, item)
				case next != "":
					fmt.Fprintf(w, `{"value":[%s],"odata.nextLink":%q}`, item, next)
				default:
					fmt.Fprintf(w, `{"value":[%s]}`, item)
				}
			})
			webs, err := newClient(t, nil).Subwebs(context.Background(), sp.site())
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, w := range webs {
				ids = append(ids, w.ID)
			}
			if want := []string{"w", "w2", "w3"}; !reflect.DeepEqual(ids, want) {
				t.Errorf("ids = %v, want %v", ids, want)
			}
		})
	}
	t.Run("foreign host refused", func(t *testing.T) {
		sp := newFake(t, reply(200, `{"value":[],"odata.nextLink":"https://evil.example/steal"}`))
		_, err := newClient(t, nil).Subwebs(context.Background(), sp.site())
		if err == nil || !strings.Contains(err.Error(), "another host") {
			t.Fatalf("err = %v, want the continuation link to another host refused", err)
		}
		if n := len(sp.requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

// TestListsWithoutChangeTokenProperty: a tenant refusing CurrentChangeToken (SharePoint's 400 for
// an unknown field) still lists its lists, without tokens; any other error is returned.
func TestListsWithoutChangeTokenProperty(t *testing.T) {
	const withToken = "/sites/hr/_api/web/lists?$select=Id,Title,BaseTemplate,ItemCount,Hidden,RootFolder/ServerRelativeUrl,CurrentChangeToken&$expand=RootFolder"
	const without = "/sites/hr/_api/web/lists?$select=Id,Title,BaseTemplate,ItemCount,Hidden,RootFolder/ServerRelativeUrl&$expand=RootFolder"
	const list = `{"value":[{"Id":"l1","Title":"Tasks","BaseTemplate":100,"ItemCount":4,"RootFolder":{"ServerRelativeUrl":"/sites/hr/Lists/Tasks"}}]}`
	tests := []struct {
		name       string
		refusal    string // the 400 body for a request naming CurrentChangeToken
		wantURIs   []string
		wantStatus int
	}{
		{name: "refused: asked again without it", refusal: notExist("CurrentChangeToken"), wantURIs: []string{withToken, without}},
		{name: "another 400 is returned", refusal: notExist("Hidden"), wantURIs: []string{withToken}, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newFake(t, func(w http.ResponseWriter, r *http.Request, b []byte) {
				if strings.Contains(r.URL.RawQuery, "CurrentChangeToken") {
					reply(400, tt.refusal)(w, r, b)
					return
				}
				reply(200, list)(w, r, b)
			})
			got, err := newClient(t, nil).Lists(context.Background(), sp.site())
			var se *spo.Error
			switch {
			case tt.wantStatus != 0 && (!errors.As(err, &se) || se.Status != tt.wantStatus):
				t.Fatalf("err = %v, want HTTP %d", err, tt.wantStatus)
			case tt.wantStatus == 0 && (err != nil || len(got) != 1 || got[0].ChangeToken != "" || got[0].ID != "l1"):
				t.Fatalf("lists %+v, %v; want the list without a token", got, err)
			}
			var uris []string
			for _, r := range sp.requests() {
				uris = append(uris, r.URI)
			}
			if !slices.Equal(uris, tt.wantURIs) {
				t.Errorf("requests\n got %q\nwant %q", uris, tt.wantURIs)
			}
		})
	}
}
