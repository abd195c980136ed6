package spo

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Web is an SP.Web as the planner needs it.
type Web struct {
	ID                string `json:"Id"`
	Title             string `json:"Title"`
	ServerRelativeURL string `json:"ServerRelativeUrl"`
	URL               string `json:"Url"`
}

// List is an SP.List (list or document library).
type List struct {
	ID           string
	Title        string
	BaseTemplate int   // 101 document library, 100 generic list, …
	ItemCount    int64 // items and folders in the list
	Hidden       bool
	// RootFolderURL is the server-relative URL of the list's root folder.
	RootFolderURL string
	// ChangeToken is the list's CurrentChangeToken (its StringValue) when SharePoint gave it: a
	// token taken before a job reads the list, which the job's incremental successor may start
	// from (docs/amr-protocol.md §7.3 C9). Empty when SharePoint refused the property.
	ChangeToken string
}

// Folder is an SP.Folder.
type Folder struct {
	Name              string
	ServerRelativeURL string
	// ItemCount counts the folder's direct children, files and folders.
	ItemCount int64
	UniqueID  string
	// Totals are the files below the folder when the listing that returned it carried its
	// StorageMetrics (Subfolders, docs/amr-protocol.md §7.3 C11); zero otherwise.
	Totals Totals
}

// Totals are what SharePoint says about the files below a folder, for sizing it.
type Totals struct {
	// FileCount counts every file below the folder, at any depth: the folder's
	// StorageMetrics.TotalFileCount, or its list item's SMTotalFileCount when StorageMetrics gave
	// none (docs/amr-protocol.md §7.5). Meaningful only when Known.
	FileCount int64
	// Size is the bytes of those files (StorageMetrics.TotalSize); 0 when SharePoint gave none.
	Size int64
	// ItemCount counts the folder's direct children, files and folders (SP.Folder.ItemCount); 0
	// when SharePoint gave none.
	ItemCount int64
	// Known is false when SharePoint gave no file count (neither field exists on the tenant, or it
	// refused both): the folder's size is unknown, never zero.
	Known bool
	// Source names the field FileCount came from: SourceStorageMetrics or SourceSMTotalFileCount;
	// "" when unknown.
	Source string
}

// Where Totals.FileCount came from.
const (
	SourceStorageMetrics   = "StorageMetrics"
	SourceSMTotalFileCount = "SMTotalFileCount"
)

const (
	webSelect    = "$select=Id,Title,ServerRelativeUrl,Url"
	folderSelect = "$select=Name,ServerRelativeUrl,ItemCount,UniqueId"
	// listingSelect is folderSelect with each folder's StorageMetrics, so a listing sizes the
	// folders it lists (docs/amr-protocol.md §7.3 C11).
	listingSelect = folderSelect + ",StorageMetrics&$expand=StorageMetrics"
)

// Web returns the web at the absolute URL web.
func (c *Client) Web(ctx context.Context, web string) (Web, error) {
	cl, err := newGet("Web", "get web", web, "/_api/web?"+webSelect)
	if err != nil {
		return Web{}, err
	}
	var w Web
	return w, c.get(ctx, cl, &w)
}

// Subwebs returns the direct subwebs of web.
func (c *Client) Subwebs(ctx context.Context, web string) ([]Web, error) {
	cl, err := newGet("Webs", "list subwebs", web, "/_api/web/webs?"+webSelect)
	if err != nil {
		return nil, err
	}
	return getAll[Web](ctx, c, cl)
}

type wireList struct {
	ID           string `json:"Id"`
	Title        string `json:"Title"`
	BaseTemplate int    `json:"BaseTemplate"`
	ItemCount    count  `json:"ItemCount"`
	Hidden       bool   `json:"Hidden"`
	RootFolder   struct {
		ServerRelativeURL string `json:"ServerRelativeUrl"`
	} `json:"RootFolder"`
	// CurrentChangeToken is an SP.ChangeToken, a complex value.
	CurrentChangeToken *struct {
		StringValue string `json:"StringValue"`
	} `json:"CurrentChangeToken"`
}

// Lists returns the lists and libraries of web, hidden ones included (callers filter), each with
// its current change token. The token is optional: on SharePoint's 400 naming CurrentChangeToken
// (docs/amr-protocol.md §5.4) the lists are asked for again without it.
func (c *Client) Lists(ctx context.Context, web string) ([]List, error) {
	const base = "/_api/web/lists?$select=Id,Title,BaseTemplate,ItemCount,Hidden,RootFolder/ServerRelativeUrl"
	const expand = "&$expand=RootFolder"
	wl, err := c.lists(ctx, web, base+",CurrentChangeToken"+expand)
	if refusesField(err, []string{"CurrentChangeToken"}) {
		wl, err = c.lists(ctx, web, base+expand)
	}
	if err != nil {
		return nil, err
	}
	out := make([]List, len(wl))
	for i, l := range wl {
		out[i] = List{ID: l.ID, Title: l.Title, BaseTemplate: l.BaseTemplate, ItemCount: l.ItemCount.N,
			Hidden: l.Hidden, RootFolderURL: l.RootFolder.ServerRelativeURL}
		if l.CurrentChangeToken != nil {
			out[i].ChangeToken = l.CurrentChangeToken.StringValue
		}
	}
	return out, nil
}

func (c *Client) lists(ctx context.Context, web, rel string) ([]wireList, error) {
	cl, err := newGet("Lists", "list lists", web, rel)
	if err != nil {
		return nil, err
	}
	return getAll[wireList](ctx, c, cl)
}

type wireFolder struct {
	Name              string       `json:"Name"`
	ServerRelativeURL string       `json:"ServerRelativeUrl"`
	ItemCount         count        `json:"ItemCount"`
	UniqueID          string       `json:"UniqueId"`
	Metrics           *wireMetrics `json:"StorageMetrics"`
}

// wireMetrics is an SP.StorageMetrics, as far as the client reads it.
type wireMetrics struct {
	TotalFileCount count `json:"TotalFileCount"`
	TotalSize      count `json:"TotalSize"`
}

// totals are a folder's totals from its StorageMetrics; unknown when m gave no file count.
func (m *wireMetrics) totals(itemCount int64) Totals {
	t := Totals{ItemCount: itemCount}
	if m != nil && m.TotalFileCount.Known {
		t.FileCount, t.Size, t.Known, t.Source = m.TotalFileCount.N, m.TotalSize.N, true, SourceStorageMetrics
	}
	return t
}

func (f wireFolder) folder() Folder {
	out := Folder{Name: f.Name, ServerRelativeURL: f.ServerRelativeURL, ItemCount: f.ItemCount.N, UniqueID: f.UniqueID}
	if t := f.Metrics.totals(f.ItemCount.N); t.Known {
		out.Totals = t
	}
	return out
}

// Folder returns the folder at a server-relative path ("/sites/hr/Shared Documents/2024").
func (c *Client) Folder(ctx context.Context, web, serverRelPath string) (Folder, error) {
	cl, err := newGet("GetFolderByServerRelativePath", "get folder", web, folderPath(serverRelPath)+"?"+folderSelect)
	if err != nil {
		return Folder{}, err
	}
	var f wireFolder
	if err := c.get(ctx, cl, &f); err != nil {
		return Folder{}, err
	}
	return f.folder(), nil
}

// Subfolders returns the direct subfolders of a folder, each with its StorageMetrics totals when
// SharePoint gave them (Folder.Totals), so one request sizes them all. The expansion on a Folders
// collection is seen in public code, not documented (docs/amr-protocol.md §7.3 C11): on any HTTP
// 400 to it the folders are listed once more without it, and a host that refused it once is no
// longer asked for it by this Client, so a tenant that refuses costs one extra request in all,
// not one per listing. Callers size folders without totals one at a time (FolderTotals).
func (c *Client) Subfolders(ctx context.Context, web, serverRelPath string) ([]Folder, error) {
	rel := folderPath(serverRelPath) + "/Folders?"
	host := hostKey(web)
	if _, refused := c.noListingMetrics.Load(host); !refused {
		wf, err := c.subfolders(ctx, web, rel+listingSelect)
		var se *Error
		if !errors.As(err, &se) || se.Status != http.StatusBadRequest {
			return wf, err
		}
		wf, err = c.subfolders(ctx, web, rel+folderSelect)
		if err == nil {
			// Only once the plain listing worked is the 400 known to be about the expansion.
			c.noListingMetrics.Store(host, true)
		}
		return wf, err
	}
	return c.subfolders(ctx, web, rel+folderSelect)
}

// ListsFolderTotals reports whether Subfolders still asks the host of web for each folder's
// StorageMetrics (false once it refused them), so a caller listing only to size folders can skip
// a listing that would size none.
func (c *Client) ListsFolderTotals(web string) bool {
	_, refused := c.noListingMetrics.Load(hostKey(web))
	return !refused
}

func (c *Client) subfolders(ctx context.Context, web, rel string) ([]Folder, error) {
	cl, err := newGet("Folders", "list subfolders", web, rel)
	if err != nil {
		return nil, err
	}
	wf, err := getAll[wireFolder](ctx, c, cl)
	if err != nil {
		return nil, err
	}
	out := make([]Folder, len(wf))
	for i, f := range wf {
		out[i] = f.folder()
	}
	return out, nil
}

// hostKey is the lower-case host of an absolute URL, or the URL itself when it has none.
func hostKey(abs string) string {
	if u, err := url.Parse(abs); err == nil && u.Host != "" {
		return strings.ToLower(u.Host)
	}
	return abs
}

// FolderTotals returns the number and size of the files below a folder and its direct children.
// It asks for the folder's StorageMetrics ($expand, as SharePoint requires), and only when that
// gives no file count, for the folder item's SMTotalFileCount. Both are optional: SharePoint
// refuses a whole request naming a field or property it does not have (HTTP 400, "The field or
// property 'X' does not exist.", docs/amr-protocol.md §5.4), so such a 400 is answered by asking
// once more without the optional field, and the totals are reported unknown rather than failing.
// Any other error, another 400 included, is returned as is.
func (c *Client) FolderTotals(ctx context.Context, web, serverRelPath string) (Totals, error) {
	var f struct {
		ItemCount count        `json:"ItemCount"`
		Metrics   *wireMetrics `json:"StorageMetrics"`
	}
	rel := folderPath(serverRelPath)
	q := fieldQuery{required: []string{"ItemCount"}, optional: []string{"StorageMetrics"}, expand: true}
	if err := c.getOptional(ctx, "GetFolderByServerRelativePath", "get folder storage metrics", web, rel, q, &f); err != nil {
		return Totals{}, err
	}
	t := f.Metrics.totals(f.ItemCount.N)
	if t.Known {
		return t, nil
	}
	var item struct {
		Files count `json:"SMTotalFileCount"`
	}
	q = fieldQuery{optional: []string{"SMTotalFileCount"}}
	if err := c.getOptional(ctx, "ListItemAllFields", "get folder item totals", web, rel+"/ListItemAllFields", q, &item); err != nil {
		return Totals{}, err
	}
	if item.Files.Known {
		t.FileCount, t.Known, t.Source = item.Files.N, true, SourceSMTotalFileCount
	}
	return t, nil
}

// fieldQuery is a $select of fields SharePoint must have (required) and fields it may not have
// (optional); with expand, the optional ones are navigation properties, expanded too.
type fieldQuery struct {
	required, optional []string
	expand             bool
}

func (q fieldQuery) query(withOptional bool) string {
	sel := q.required
	if withOptional {
		sel = append(slices.Clone(sel), q.optional...)
	}
	s := "?$select=" + strings.Join(sel, ",")
	if withOptional && q.expand {
		s += "&$expand=" + strings.Join(q.optional, ",")
	}
	return s
}

// getOptional fetches one object with q's fields into v. If SharePoint answers 400 naming one of
// the optional fields, it asks once more with the required fields only (v then holds no optional
// field); with no required field there is nothing to ask, and v stays empty.
func (c *Client) getOptional(ctx context.Context, method, op, web, rel string, q fieldQuery, v any) error {
	cl, err := newGet(method, op, web, rel+q.query(true))
	if err != nil {
		return err
	}
	err = c.get(ctx, cl, v)
	if err == nil || !refusesField(err, q.optional) {
		return err
	}
	if len(q.required) == 0 {
		return nil
	}
	if cl, err = newGet(method, op, web, rel+q.query(false)); err != nil {
		return err
	}
	return c.get(ctx, cl, v)
}

// refusesField reports whether err is SharePoint's HTTP 400 refusing one of fields: "The field or
// property 'X' does not exist." (code -1, Microsoft.SharePoint.SPException), or "The query to field
// 'X' is not valid." for a lookup field that would need $expand (docs/amr-protocol.md §5.4). The
// field is matched by its quoted name, case-insensitively, so a localised message matches too; a
// 400 that names no optional field is not a refusal of one.
func refusesField(err error, fields []string) bool {
	var se *Error
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		return false
	}
	msg := strings.ToLower(se.Message)
	for _, f := range fields {
		if strings.Contains(msg, "'"+strings.ToLower(f)+"'") {
			return true
		}
	}
	return false
}

// newGet starts a GET of web + rel.
func newGet(method, op, web, rel string) (*call, error) {
	cl, err := newCall(method, op, web)
	if err != nil {
		return nil, err
	}
	cl.verb, cl.url = http.MethodGet, cl.site+rel
	return cl, nil
}

// folderPath addresses a folder through the ResourcePath API with its decoded server-relative
// path, the form Microsoft requires for names holding '%' or '#' (docs/amr-protocol.md §7.4 row 8);
// the literal is percent-encoded for the URL, so SharePoint sees the decoded path once decoded.
func folderPath(serverRelPath string) string {
	if !strings.HasPrefix(serverRelPath, "/") {
		serverRelPath = "/" + serverRelPath
	}
	return "/_api/web/GetFolderByServerRelativePath(DecodedUrl=" + odataString(serverRelPath) + ")"
}
