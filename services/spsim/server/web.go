package server

import (
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// folderCall matches GetFolderByServerRelativeUrl('<path>') with an optional /Folders or
// /ListItemAllFields; quotes inside the path are doubled, OData style.
var folderCall = regexp.MustCompile(`^GetFolderByServerRelativeUrl\('((?:[^']|'')*)'\)(/Folders|/ListItemAllFields)?$`)

// serveWeb handles the calls bound to SP.Web that the planner uses for sizing.
func (s *Server) serveWeb(w http.ResponseWriter, r *http.Request, prefix, rest string) {
	if r.Method != http.MethodGet {
		writeError(w, r, http.StatusMethodNotAllowed, errInvalidArg("Use GET."))
		return
	}
	web, err := s.cfg.Tenant.Web(prefix)
	if err != nil {
		writeError(w, r, http.StatusNotFound, errNotFound("Web not found: "+prefix))
		return
	}
	base := baseURL(r)
	switch {
	case rest == "":
		writeObject(w, r, "web", "SP.Web", webFields(base, web))
	case rest == "webs":
		subs, err := s.cfg.Tenant.Subwebs(web.ServerRelativeURL)
		if err != nil {
			writeTenantError(w, r, err)
			return
		}
		items := make([]map[string]any, len(subs))
		for i, sw := range subs {
			items[i] = webFields(base, sw)
		}
		writeCollection(w, r, items)
	case rest == "lists":
		lists, err := s.cfg.Tenant.Lists(web.ServerRelativeURL)
		if err != nil {
			writeTenantError(w, r, err)
			return
		}
		items := make([]map[string]any, len(lists))
		for i, l := range lists {
			items[i] = map[string]any{"Id": l.ID, "Title": l.Title, "BaseTemplate": l.BaseTemplate, "ItemCount": l.ItemCount,
				"Hidden": l.Hidden, "RootFolder": map[string]any{"ServerRelativeUrl": l.RootFolderURL}}
		}
		writeCollection(w, r, items)
	default:
		m := folderCall.FindStringSubmatch(rest)
		if m == nil {
			writeError(w, r, http.StatusNotFound, errNotFound("No such method on SP.Web: "+methodName(rest)))
			return
		}
		s.serveFolder(w, r, strings.ReplaceAll(m[1], "''", "'"), m[2])
	}
}

func (s *Server) serveFolder(w http.ResponseWriter, r *http.Request, path, sub string) {
	f, err := s.cfg.Tenant.Folder(path)
	if err != nil {
		writeTenantError(w, r, err)
		return
	}
	switch sub {
	case "":
		writeObject(w, r, "GetFolderByServerRelativeUrl", "SP.Folder", folderFields(f))
	case "/Folders":
		subs, err := s.cfg.Tenant.Subfolders(path)
		if err != nil {
			writeTenantError(w, r, err)
			return
		}
		items := make([]map[string]any, len(subs))
		for i, sf := range subs {
			items[i] = folderFields(sf)
		}
		writeCollection(w, r, items)
	case "/ListItemAllFields":
		writeObject(w, r, "ListItemAllFields", "SP.ListItem", map[string]any{
			"SMTotalFileCount": f.SMTotalFileCount, "SMTotalFolderCount": f.SMTotalFolderCount, "SMTotalSize": f.SMTotalSize,
		})
	}
}

func webFields(base string, w tenant.Web) map[string]any {
	return map[string]any{"Id": w.ID, "Title": w.Title, "ServerRelativeUrl": w.ServerRelativeURL, "Url": base + w.ServerRelativeURL}
}

func folderFields(f tenant.Folder) map[string]any {
	return map[string]any{"Name": f.Name, "ServerRelativeUrl": f.ServerRelativeURL, "ItemCount": f.ItemCount, "UniqueId": f.ID}
}

func writeTenantError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, tenant.ErrNotFound) {
		writeError(w, r, http.StatusNotFound, errNotFound("File Not Found."))
		return
	}
	writeError(w, r, http.StatusInternalServerError, errInvalidArg("%v", err))
}
