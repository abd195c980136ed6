package spo

import (
	"context"
	"net/http"
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
}

// Folder is an SP.Folder.
type Folder struct {
	Name              string
	ServerRelativeURL string
	// ItemCount counts the folder's direct children, files and folders.
	ItemCount int64
	UniqueID  string
}

// Totals are a folder's recursive SMTotal* figures.
type Totals struct {
	FileCount   int64 // SMTotalFileCount: every file below the folder
	FolderCount int64 // SMTotalFolderCount: every folder below it
	Size        int64 // SMTotalSize, bytes
	// Known is false when SharePoint gave no SMTotalFileCount (library root folders have no
	// list item, hence no totals); the other two read 0 when absent.
	Known bool
}

const (
	webSelect    = "$select=Id,Title,ServerRelativeUrl,Url"
	folderSelect = "$select=Name,ServerRelativeUrl,ItemCount,UniqueId"
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
}

// Lists returns the lists and libraries of web, hidden ones included (callers filter).
func (c *Client) Lists(ctx context.Context, web string) ([]List, error) {
	cl, err := newGet("Lists", "list lists", web,
		"/_api/web/lists?$select=Id,Title,BaseTemplate,ItemCount,Hidden,RootFolder/ServerRelativeUrl&$expand=RootFolder")
	if err != nil {
		return nil, err
	}
	wl, err := getAll[wireList](ctx, c, cl)
	if err != nil {
		return nil, err
	}
	out := make([]List, len(wl))
	for i, l := range wl {
		out[i] = List{ID: l.ID, Title: l.Title, BaseTemplate: l.BaseTemplate, ItemCount: l.ItemCount.N,
			Hidden: l.Hidden, RootFolderURL: l.RootFolder.ServerRelativeURL}
	}
	return out, nil
}

type wireFolder struct {
	Name              string `json:"Name"`
	ServerRelativeURL string `json:"ServerRelativeUrl"`
	ItemCount         count  `json:"ItemCount"`
	UniqueID          string `json:"UniqueId"`
}

func (f wireFolder) folder() Folder {
	return Folder{Name: f.Name, ServerRelativeURL: f.ServerRelativeURL, ItemCount: f.ItemCount.N, UniqueID: f.UniqueID}
}

// Folder returns the folder at a server-relative path ("/sites/hr/Shared Documents/2024").
func (c *Client) Folder(ctx context.Context, web, serverRelPath string) (Folder, error) {
	cl, err := newGet("GetFolderByServerRelativeUrl", "get folder", web, folderPath(serverRelPath)+"?"+folderSelect)
	if err != nil {
		return Folder{}, err
	}
	var f wireFolder
	if err := c.get(ctx, cl, &f); err != nil {
		return Folder{}, err
	}
	return f.folder(), nil
}

// Subfolders returns the direct subfolders of a folder.
func (c *Client) Subfolders(ctx context.Context, web, serverRelPath string) ([]Folder, error) {
	cl, err := newGet("Folders", "list subfolders", web, folderPath(serverRelPath)+"/Folders?"+folderSelect)
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

// FolderTotals returns the recursive file and folder counts and size under a folder, read from
// its list item's SMTotal* fields, which SharePoint sends as numbers, numeric strings or lookup
// objects.
func (c *Client) FolderTotals(ctx context.Context, web, serverRelPath string) (Totals, error) {
	cl, err := newGet("ListItemAllFields", "get folder totals", web,
		folderPath(serverRelPath)+"/ListItemAllFields?$select=SMTotalFileCount,SMTotalFolderCount,SMTotalSize")
	if err != nil {
		return Totals{}, err
	}
	var w struct {
		Files   count `json:"SMTotalFileCount"`
		Folders count `json:"SMTotalFolderCount"`
		Size    count `json:"SMTotalSize"`
	}
	if err := c.get(ctx, cl, &w); err != nil {
		return Totals{}, err
	}
	return Totals{FileCount: w.Files.N, FolderCount: w.Folders.N, Size: w.Size.N, Known: w.Files.Known}, nil
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

func folderPath(serverRelPath string) string {
	if !strings.HasPrefix(serverRelPath, "/") {
		serverRelPath = "/" + serverRelPath
	}
	return "/_api/web/GetFolderByServerRelativeUrl(" + odataString(serverRelPath) + ")"
}
