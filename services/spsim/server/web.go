package server

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// folderCall matches the two ways of addressing a folder, with an optional /Folders or
// /ListItemAllFields: GetFolderByServerRelativePath(DecodedUrl='<path>'), the ResourcePath form
// Microsoft requires for names with '%' or '#', and the older GetFolderByServerRelativeUrl('<path>').
// Quotes inside the path are doubled, OData style; method and parameter names are matched without
// regard to case, as public clients spell them both ways.
var folderCall = regexp.MustCompile(`^(?i:GetFolderByServerRelativePath\(\s*decodedurl\s*=\s*|GetFolderByServerRelativeUrl\()'((?:[^']|'')*)'\s*\)(?i:(/Folders|/ListItemAllFields))?$`)

// serveWeb handles the calls bound to SP.Web that the planner uses for sizing. Every answer is
// shaped by the request's $select and $expand, which name only what the simulator serves
// (schemas); anything else is refused as SharePoint refuses an unknown field.
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
		s.answer(w, r, "web", webEntity(base, web))
	case strings.EqualFold(rest, "webs"):
		subs, err := s.cfg.Tenant.Subwebs(web.ServerRelativeURL)
		if err != nil {
			writeTenantError(w, r, err)
			return
		}
		items := make([]entity, len(subs))
		for i, sw := range subs {
			items[i] = webEntity(base, sw)
		}
		s.answerAll(w, r, typeWeb, items)
	case strings.EqualFold(rest, "lists"):
		lists, err := s.cfg.Tenant.Lists(web.ServerRelativeURL)
		if err != nil {
			writeTenantError(w, r, err)
			return
		}
		items := make([]entity, len(lists))
		for i, l := range lists {
			items[i] = s.listEntity(l)
		}
		s.answerAll(w, r, typeList, items)
	default:
		m := folderCall.FindStringSubmatch(rest)
		if m == nil {
			writeError(w, r, http.StatusNotFound, errNotFound("No such method on SP.Web: "+methodName(rest)))
			return
		}
		s.serveFolder(w, r, methodName(rest), strings.ReplaceAll(m[1], "''", "'"), strings.ToLower(m[2]))
	}
}

func (s *Server) serveFolder(w http.ResponseWriter, r *http.Request, method, path, sub string) {
	f, err := s.cfg.Tenant.Folder(path)
	if err != nil {
		writeTenantError(w, r, err)
		return
	}
	switch sub {
	case "":
		s.answer(w, r, method, folderEntity(f))
	case "/folders":
		subs, err := s.cfg.Tenant.Subfolders(path)
		if err != nil {
			writeTenantError(w, r, err)
			return
		}
		items := make([]entity, len(subs))
		for i, sf := range subs {
			items[i] = folderEntity(sf)
		}
		s.answerAll(w, r, typeFolder, items)
	case "/listitemallfields":
		s.answer(w, r, "ListItemAllFields", s.folderItemEntity(f))
	}
}

// The entity types the simulator serves, and what it serves of each (docs/amr-protocol.md §7 marks
// each field confirmed or observed). A $select or $expand naming anything else is refused.
const (
	typeWeb            = "SP.Web"
	typeList           = "SP.List"
	typeFolder         = "SP.Folder"
	typeStorageMetrics = "SP.StorageMetrics"
	typeFolderItem     = "SP.ListItem"
)

type schema struct {
	props []string
	nav   map[string]string // navigation property → its type
}

var schemas = map[string]schema{
	typeWeb: {props: []string{"Id", "Title", "ServerRelativeUrl", "Url"}},
	typeList: {props: []string{"Id", "Title", "BaseTemplate", "ItemCount", "Hidden", "CurrentChangeToken"},
		nav: map[string]string{"RootFolder": typeFolder}},
	typeFolder: {props: []string{"Name", "ServerRelativeUrl", "ItemCount", "UniqueId"},
		nav: map[string]string{"StorageMetrics": typeStorageMetrics}},
	typeStorageMetrics: {props: []string{"TotalFileCount", "TotalSize", "LastModified"}},
	// A folder's list item: only the hidden fields that count what is below the folder.
	typeFolderItem: {props: []string{"SMTotalFileCount", "SMTotalSize", "ItemChildCount", "FolderChildCount"}},
}

// entity is one served object: its property values (a property it has no value for is left out)
// and its navigation properties, built only when expanded.
type entity struct {
	typ   string
	props map[string]any
	nav   map[string]func() entity
}

func webEntity(base string, w tenant.Web) entity {
	return entity{typ: typeWeb, props: map[string]any{"Id": w.ID, "Title": w.Title, "ServerRelativeUrl": w.ServerRelativeURL, "Url": base + w.ServerRelativeURL}}
}

// listEntity is an SP.List. CurrentChangeToken is an SP.ChangeToken, a complex value whose
// StringValue is the token (docs/amr-protocol.md §7.3 C9).
func (s *Server) listEntity(l tenant.List) entity {
	token := map[string]any{"StringValue": s.cfg.Tenant.CurrentChangeToken(tenant.Target{ListID: l.ID})}
	return entity{typ: typeList,
		props: map[string]any{"Id": l.ID, "Title": l.Title, "BaseTemplate": l.BaseTemplate, "ItemCount": l.ItemCount, "Hidden": l.Hidden,
			"CurrentChangeToken": token},
		nav: map[string]func() entity{"RootFolder": func() entity {
			f, err := s.cfg.Tenant.Folder(l.RootFolderURL)
			if err != nil {
				f = tenant.Folder{ServerRelativeURL: l.RootFolderURL}
			}
			return folderEntity(f)
		}},
	}
}

func folderEntity(f tenant.Folder) entity {
	return entity{typ: typeFolder,
		props: map[string]any{"Name": f.Name, "ServerRelativeUrl": f.ServerRelativeURL, "ItemCount": f.ItemCount, "UniqueId": f.ID},
		nav: map[string]func() entity{"StorageMetrics": func() entity {
			return entity{typ: typeStorageMetrics, props: map[string]any{
				"TotalFileCount": f.SMTotalFileCount, "TotalSize": f.SMTotalSize, "LastModified": f.Modified.UTC().Format(time.RFC3339),
			}}
		}},
	}
}

// folderItemEntity is ListItemAllFields of a folder. A library's root folder has no list item
// (CSOM answers null); what REST answers there is unknown, so the simulator answers an item
// without fields rather than inventing totals for it.
func (s *Server) folderItemEntity(f tenant.Folder) entity {
	if root, err := s.cfg.Tenant.Resolve(f.ServerRelativeURL); err == nil && root.Kind == tenant.TargetList {
		return entity{typ: typeFolderItem, props: map[string]any{}}
	}
	return entity{typ: typeFolderItem, props: map[string]any{
		"SMTotalFileCount": f.SMTotalFileCount, "SMTotalSize": f.SMTotalSize,
		"ItemChildCount": f.ItemCount - f.FolderChildCount, "FolderChildCount": f.FolderChildCount,
	}}
}

// answer writes one entity shaped by the request's query options.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, method string, e entity) {
	q, bad := parseQuery(r, e.typ)
	if bad != "" {
		writeError(w, r, http.StatusBadRequest, errNoField(bad))
		return
	}
	writeObject(w, r, method, e.typ, q.project(e, verbose(r), false))
}

// answerAll writes a collection of entities of typ shaped by the request's query options.
func (s *Server) answerAll(w http.ResponseWriter, r *http.Request, typ string, items []entity) {
	q, bad := parseQuery(r, typ)
	if bad != "" {
		writeError(w, r, http.StatusBadRequest, errNoField(bad))
		return
	}
	out := make([]map[string]any, len(items))
	for i, e := range items {
		out[i] = q.project(e, verbose(r), verbose(r))
	}
	writeCollection(w, r, out)
}

// errNoField is SharePoint's answer to a $select or $expand naming a field or property the entity
// does not have (HTTP 400), as real output quotes it (docs/amr-protocol.md §5.4).
func errNoField(name string) spError {
	return spError{Code: -1, Type: "Microsoft.SharePoint.SPException", Message: "The field or property '" + name + "' does not exist."}
}

// query is a request's $select and $expand at one level of an entity.
type query struct {
	selected bool // $select names something at this level
	all      bool // $select=*
	props    map[string]bool
	navs     map[string]*navQuery
}

type navQuery struct {
	expanded, selected bool
	q                  *query
}

// parseQuery checks $select and $expand against typ's schema. It returns the name of the first
// field or property the simulator does not serve, if any. Names match without regard to case
// (an assumption: SharePoint's own matching is not documented).
func parseQuery(r *http.Request, typ string) (*query, string) {
	v := r.URL.Query()
	q := &query{}
	for _, e := range splitList(v.Get("$expand")) {
		if bad := q.expand(typ, strings.Split(e, "/")); bad != "" {
			return nil, bad
		}
	}
	for _, s := range splitList(v.Get("$select")) {
		if bad := q.sel(typ, strings.Split(s, "/")); bad != "" {
			return nil, bad
		}
	}
	return q, ""
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func canonical(names []string, name string) string {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return n
		}
	}
	return ""
}

func (q *query) nav(typ, name string) (string, *navQuery) {
	for n := range schemas[typ].nav {
		if strings.EqualFold(n, name) {
			if q.navs == nil {
				q.navs = map[string]*navQuery{}
			}
			if q.navs[n] == nil {
				q.navs[n] = &navQuery{q: &query{}}
			}
			return n, q.navs[n]
		}
	}
	return "", nil
}

func (q *query) expand(typ string, path []string) string {
	name, nq := q.nav(typ, path[0])
	if nq == nil {
		return path[0]
	}
	nq.expanded = true
	if len(path) > 1 {
		return nq.q.expand(schemas[typ].nav[name], path[1:])
	}
	return ""
}

func (q *query) sel(typ string, path []string) string {
	q.selected = true
	if path[0] == "*" && len(path) == 1 {
		q.all = true
		return ""
	}
	if p := canonical(schemas[typ].props, path[0]); p != "" {
		if len(path) > 1 {
			return path[1] // a property has no properties
		}
		if q.props == nil {
			q.props = map[string]bool{}
		}
		q.props[p] = true
		return ""
	}
	name, nq := q.nav(typ, path[0])
	if nq == nil {
		return path[0]
	}
	nq.selected = true
	if len(path) > 1 {
		return nq.q.sel(schemas[typ].nav[name], path[1:])
	}
	return ""
}

// project is the part of e the query asks for: every property without $select, else the selected
// ones; a navigation property only when expanded (and selected, when $select names anything).
// meta adds verbose's __metadata (the top level gets it from writeObject).
func (q *query) project(e entity, verbose, meta bool) map[string]any {
	out := map[string]any{}
	if meta {
		out["__metadata"] = map[string]string{"type": e.typ}
	}
	for name, v := range e.props {
		if !q.selected || q.all || q.props[name] {
			out[name] = v
		}
	}
	for name, nq := range q.navs {
		build := e.nav[name]
		if build == nil || !nq.expanded || q.selected && !q.all && !nq.selected {
			continue
		}
		out[name] = nq.q.project(build(), verbose, verbose)
	}
	return out
}

func writeTenantError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, tenant.ErrNotFound) {
		writeError(w, r, http.StatusNotFound, errNotFound("File Not Found."))
		return
	}
	writeError(w, r, http.StatusInternalServerError, errInvalidArg("%v", err))
}
