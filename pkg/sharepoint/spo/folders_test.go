package spo_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

func TestFolderRequestPaths(t *testing.T) {
	const sel = "?$select=Name,ServerRelativeUrl,ItemCount,UniqueId"
	const fn = "/sites/hr/team/_api/web/GetFolderByServerRelativeUrl("
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
			uri:  "/sites/hr/team/_api/web/lists?$select=Id,Title,BaseTemplate,ItemCount,Hidden,RootFolder/ServerRelativeUrl&$expand=RootFolder",
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
			uri:  fn + "'/sites/hr/team/Lib/it''s')/Folders" + sel,
			path: fn + "'/sites/hr/team/Lib/it''s')/Folders",
		},
		{
			name: "totals",
			call: func(c *spo.Client, web string) error {
				_, err := c.FolderTotals(context.Background(), web, "/sites/hr/team/Lib/a&b+c")
				return err
			},
			uri:  fn + "'/sites/hr/team/Lib/a&b+c')/ListItemAllFields?$select=SMTotalFileCount,SMTotalFolderCount,SMTotalSize",
			path: fn + "'/sites/hr/team/Lib/a&b+c')/ListItemAllFields",
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

func TestFolderTotalsForms(t *testing.T) {
	tests := []struct {
		name, body string
		want       spo.Totals
	}{
		{"numbers", `{"SMTotalFileCount":12,"SMTotalFolderCount":3,"SMTotalSize":4096}`, spo.Totals{FileCount: 12, FolderCount: 3, Size: 4096, Known: true}},
		{"numeric strings", `{"SMTotalFileCount":"12","SMTotalFolderCount":" 3 ","SMTotalSize":"9007199254740993"}`, spo.Totals{FileCount: 12, FolderCount: 3, Size: 9007199254740993, Known: true}},
		{"lookup objects", `{"SMTotalFileCount":{"LookupId":5,"LookupValue":"12"},"SMTotalFolderCount":{"LookupId":3,"LookupValue":"3"},"SMTotalSize":{"LookupId":4096,"LookupValue":"4096"}}`, spo.Totals{FileCount: 12, FolderCount: 3, Size: 4096, Known: true}},
		{"lookup without value", `{"SMTotalFileCount":{"LookupId":12}}`, spo.Totals{FileCount: 12, Known: true}},
		{"float-encoded", `{"SMTotalFileCount":1.2e3}`, spo.Totals{FileCount: 1200, Known: true}},
		{"root folder: no totals", `{}`, spo.Totals{}},
		{"nulls", `{"SMTotalFileCount":null,"SMTotalFolderCount":null,"SMTotalSize":null}`, spo.Totals{}},
		{"garbage", `{"SMTotalFileCount":"many","SMTotalFolderCount":true}`, spo.Totals{}},
		{"verbose, deferred lookup", `{"d":{"SMTotalFileCount":{"__deferred":{"uri":"x"}},"SMTotalSize":"10"}}`, spo.Totals{Size: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newFake(t, reply(200, tt.body))
			got, err := newClient(t, nil).FolderTotals(context.Background(), sp.site(), "/sites/hr/Lib/a")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
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
