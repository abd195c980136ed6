package planner

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// TestSizerSizesNodesByFiles: over the simulator, a folder's size is the number of files below it
// (StorageMetrics.TotalFileCount), never less than its direct children; a list root's is the
// list's ItemCount. Children sizes the subfolders from one listing.
func TestSizerSizesNodesByFiles(t *testing.T) {
	t.Parallel()
	h := start(t, tenant.SmallProfile(), Config{})
	docs := h.list("Documents")
	tasks := h.list("Tasks")
	tests := []struct {
		path string
		kind sizing.Kind
		want int64
	}{
		{docs.RootFolderURL + "/Big", sizing.KindFolder, 1200},
		{docs.RootFolderURL + "/Team-0001", sizing.KindFolder, 40},         // 30 files here, 10 below; 31 children
		{docs.RootFolderURL + "/Team-0001/Archive", sizing.KindFolder, 10}, // 7 + 3 files, 8 children
		{docs.RootFolderURL + "/Team-0001/Archive/Old", sizing.KindFolder, 3},
		{docs.RootFolderURL + "/Empty", sizing.KindFolder, 0},
		{docs.RootFolderURL, sizing.KindList, docs.ItemCount}, // files and folders at any depth
		{tasks.RootFolderURL, sizing.KindList, tasks.ItemCount},
	}
	sz, err := NewSizer(h.sp, h.siteURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			n, err := sz.Resolve(context.Background(), h.url(tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if n.Kind != tt.kind || n.Items != tt.want {
				t.Errorf("node %+v, want kind %d and %d items", n, tt.kind, tt.want)
			}
		})
	}
	before := h.sim.Calls()["GetFolderByServerRelativePath"]
	kids, err := sz.Children(context.Background(), h.url(docs.RootFolderURL))
	if err != nil {
		t.Fatal(err)
	}
	if n := h.sim.Calls()["GetFolderByServerRelativePath"] - before; n != 1 {
		t.Errorf("Children made %d folder requests, want one listing that sizes all %d subfolders", n, len(kids))
	}
	for _, k := range kids {
		f, err := h.tenant.Folder(strings.TrimPrefix(k.URL, h.url("")))
		if err != nil {
			t.Fatal(err)
		}
		if want := max(f.SMTotalFileCount, int64(f.ItemCount)); k.Items != want {
			t.Errorf("child %s: %d items, want %d", k.URL, k.Items, want)
		}
	}
}

// TestSizerDegradesWithoutTotals: a tenant that refuses StorageMetrics and SMTotalFileCount with
// SharePoint's 400 for an unknown field leaves a folder's size unknown (the planner probes it)
// instead of failing the plan; any other answer fails the call as before.
func TestSizerDegradesWithoutTotals(t *testing.T) {
	t.Parallel()
	h := start(t, tenant.SmallProfile(), Config{})
	notExist := func(f string) string {
		return `{"odata.error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"The field or property '` + f + `' does not exist."}}}`
	}
	tests := []struct {
		name                string
		metrics, item       func(w http.ResponseWriter)
		want                int64
		wantErr             string
		wantFolderRequested []string
	}{
		{name: "neither field exists",
			metrics: func(w http.ResponseWriter) { w.WriteHeader(400); fmt.Fprint(w, notExist("StorageMetrics")) },
			item:    func(w http.ResponseWriter) { w.WriteHeader(400); fmt.Fprint(w, notExist("SMTotalFileCount")) },
			want:    sizing.UnknownItems,
			wantFolderRequested: []string{"?$select=ItemCount,StorageMetrics&$expand=StorageMetrics", "?$select=ItemCount",
				"/ListItemAllFields?$select=SMTotalFileCount"}},
		{name: "only the folder item's SMTotalFileCount",
			metrics: func(w http.ResponseWriter) { w.WriteHeader(400); fmt.Fprint(w, notExist("StorageMetrics")) },
			item:    func(w http.ResponseWriter) { fmt.Fprint(w, `{"SMTotalFileCount":"12345"}`) },
			want:    12345,
			wantFolderRequested: []string{"?$select=ItemCount,StorageMetrics&$expand=StorageMetrics", "?$select=ItemCount",
				"/ListItemAllFields?$select=SMTotalFileCount"}},
		{name: "StorageMetrics",
			metrics: func(w http.ResponseWriter) {
				fmt.Fprint(w, `{"ItemCount":2,"StorageMetrics":{"TotalFileCount":77,"TotalSize":1}}`)
			},
			want:                77,
			wantFolderRequested: []string{"?$select=ItemCount,StorageMetrics&$expand=StorageMetrics"}},
		{name: "another 400 fails the call",
			metrics: func(w http.ResponseWriter) {
				w.WriteHeader(400)
				fmt.Fprint(w, `{"odata.error":{"code":"-1, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"Bad request."}}}`)
			},
			wantErr:             "HTTP 400",
			wantFolderRequested: []string{"?$select=ItemCount,StorageMetrics&$expand=StorageMetrics"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var folderCalls []string
			const folder = "/_api/web/GetFolderByServerRelativePath(DecodedUrl='/sites/x/Docs/2024')"
			fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json;odata=nometadata")
				switch uri := strings.TrimPrefix(r.RequestURI, "/sites/x"); {
				case strings.HasPrefix(uri, "/_api/web?"):
					fmt.Fprint(w, `{"Id":"w","Title":"X","ServerRelativeUrl":"/sites/x","Url":"u"}`)
				case strings.HasPrefix(uri, "/_api/web/webs?"):
					fmt.Fprint(w, `{"value":[]}`)
				case strings.HasPrefix(uri, "/_api/web/lists?"):
					fmt.Fprint(w, `{"value":[{"Id":"l1","Title":"Docs","BaseTemplate":101,"ItemCount":9,"Hidden":false,"RootFolder":{"ServerRelativeUrl":"/sites/x/Docs"}}]}`)
				case strings.HasPrefix(uri, folder):
					mu.Lock()
					folderCalls = append(folderCalls, strings.TrimPrefix(uri, folder))
					mu.Unlock()
					if strings.HasPrefix(uri, folder+"/ListItemAllFields") {
						tt.item(w)
					} else if strings.Contains(uri, "StorageMetrics") {
						tt.metrics(w)
					} else {
						fmt.Fprint(w, `{"ItemCount":2}`)
					}
				default:
					w.WriteHeader(404)
				}
			}))
			defer fake.Close()
			sz, err := NewSizer(h.sp, fake.URL+"/sites/x")
			if err != nil {
				t.Fatal(err)
			}
			n, err := sz.Resolve(context.Background(), fake.URL+"/sites/x/Docs/2024")
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve = %+v, %v; want an error saying %q", n, err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case n.Items != tt.want || n.Kind != sizing.KindFolder:
				t.Errorf("node %+v, want a folder of %d items", n, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(folderCalls, " ") != strings.Join(tt.wantFolderRequested, " ") {
				t.Errorf("folder requests\n got %q\nwant %q", folderCalls, tt.wantFolderRequested)
			}
		})
	}
}
