package parser

import (
	"net/url"
	"strings"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Why a record is published or not; the drop reasons label amr_parser_records_dropped_total.
type verdict uint8

const (
	publish verdict = iota
	// dropPolicy: the job's Emit policy leaves the record to another job (a probe's direct
	// subfolders, content of the security job).
	dropPolicy
	// dropPrincipals: users, groups and role definitions of a job with emit_principals=false.
	dropPrincipals
	// dropOutside: an object above or beside the job's URLs (context AMR adds, such as the list
	// of a folder target), which the job reading it publishes.
	dropOutside
	// dropScope: an object of an incremental job outside its scope URLs.
	dropScope
)

var verdictNames = [...]string{publish: "published", dropPolicy: "policy", dropPrincipals: "principals",
	dropOutside: "outside_urls", dropScope: "outside_scope"}

func (v verdict) String() string { return verdictNames[v] }

// class sorts records for the Emit policy.
type class uint8

const (
	// classPackage: package metadata without a URL (ExportSettings, SystemData, RootObjectMap, ...).
	classPackage class = iota
	// classPrincipal: users, groups and role definitions.
	classPrincipal
	// classContent: lists, folders, files, list items and role assignments, which have a URL.
	classContent
)

// policy is a job's emission rule (pkg/planner's "Exactly-once emission"): which of the records
// AMR returned this job publishes, so that every object under a plan's targets reaches
// downstream once although jobs overlap. It depends only on the job spec and the record, so a
// re-parsed file yields the same records and the same batches.
type policy struct {
	emit       amrpipev1.Emit
	principals bool
	// roots are the server-relative paths of the job's URLs; scope those of its scope. Each URL
	// contributes its path as written and, when different, percent-decoded. rootIndex and
	// scopeIndex find the one a record's path is under in time independent of their number.
	roots, scope          []string
	rootIndex, scopeIndex *pathIndex
	// webPath is the job's web, for the web-relative ObjectUrl of role assignments.
	webPath string
}

func newPolicy(spec *amrpipev1.JobSpec) *policy {
	p := &policy{emit: spec.GetEmit(), principals: spec.GetEmitPrincipals(), webPath: urlPath(spec.GetWebUrl())}
	if p.emit == amrpipev1.Emit_EMIT_UNSPECIFIED {
		p.emit = amrpipev1.Emit_EMIT_ALL
	}
	for _, u := range spec.GetUrls() {
		p.roots = appendPaths(p.roots, u)
	}
	for _, u := range spec.GetScope() {
		p.scope = appendPaths(p.scope, u)
	}
	p.rootIndex, p.scopeIndex = newPathIndex(p.roots), newPathIndex(p.scope)
	return p
}

// appendPaths adds the path of an absolute URL, and its percent-decoded form when that differs
// (users may paste encoded URLs; SharePoint names may also hold a literal '%').
func appendPaths(paths []string, u string) []string {
	p := urlPath(u)
	paths = append(paths, p)
	if d, err := url.PathUnescape(p); err == nil && d != p {
		paths = append(paths, d)
	}
	return paths
}

// decide says whether rec is published.
func (p *policy) decide(rec *amrpipev1.Record) verdict {
	cls, path := p.classify(rec)
	switch cls {
	case classPrincipal:
		if !p.principals {
			return dropPrincipals
		}
		return publish
	case classPackage:
		if p.emit == amrpipev1.Emit_EMIT_SECURITY_ONLY {
			return dropPolicy
		}
		return publish
	}
	if p.emit == amrpipev1.Emit_EMIT_SECURITY_ONLY {
		return dropPolicy
	}
	if path == "" {
		return publish // nothing to place it by: rather twice than never
	}
	root, ok := p.root(path)
	if !ok {
		return dropOutside
	}
	if _, in := p.scopeIndex.lookup(path); len(p.scope) > 0 && !in {
		return dropScope
	}
	// A probe reads its URL with IncludeDirectDescendantsOnly: the folders below it are its
	// direct subfolders, which their own jobs publish as their target.
	if p.emit == amrpipev1.Emit_EMIT_PROBE && len(path) > len(root) && isFolder(rec) {
		return dropPolicy
	}
	return publish
}

// classify returns the class of rec and, for content, its server-relative path.
func (p *policy) classify(rec *amrpipev1.Record) (class, string) {
	switch b := rec.GetBody().(type) {
	case *amrpipev1.Record_User, *amrpipev1.Record_Group, *amrpipev1.Record_Role:
		return classPrincipal, ""
	case *amrpipev1.Record_File, *amrpipev1.Record_Folder, *amrpipev1.Record_ListItem, *amrpipev1.Record_List:
		return classContent, recordPath(rec)
	case *amrpipev1.Record_RoleAssignment:
		return classContent, p.objectPath(b.RoleAssignment.GetObjectUrl())
	}
	if u := rec.GetSpObject().GetServerRelativeUrl(); u != "" {
		return classContent, u // an SPObject of a type the parser does not model
	}
	return classPackage, ""
}

// objectPath makes RoleAssignment/@ObjectUrl server-relative. Samples write it web-relative
// ("SampleDocLib/a.txt", as the simulator does) or server-relative without the leading slash
// ("teams/temp/Relationships List", the migration-manifest documentation): a URL already inside
// the job's web is taken as the latter.
func (p *policy) objectPath(u string) string {
	switch {
	case u == "":
		return ""
	case strings.HasPrefix(u, "/"):
		return u
	case p.webPath != "/" && under("/"+u, p.webPath):
		return "/" + u
	}
	return strings.TrimSuffix(p.webPath, "/") + "/" + u
}

// root returns the job URL path that path is at or below (the first in the spec's order).
func (p *policy) root(path string) (string, bool) {
	if len(p.roots) == 0 {
		return "", true // a job without URLs: nothing to restrict by
	}
	if i, ok := p.rootIndex.lookup(path); ok {
		return p.roots[i], true
	}
	return "", false
}

// recordPath is the server-relative URL of a content record: SPObject/@Url, else what the
// element itself says.
func recordPath(rec *amrpipev1.Record) string {
	if u := rec.GetSpObject().GetServerRelativeUrl(); u != "" {
		return u
	}
	switch b := rec.GetBody().(type) {
	case *amrpipev1.Record_File:
		return b.File.GetServerRelativeUrl()
	case *amrpipev1.Record_Folder:
		return b.Folder.GetServerRelativeUrl()
	case *amrpipev1.Record_ListItem:
		return b.ListItem.GetServerRelativeUrl()
	case *amrpipev1.Record_List:
		if u := b.List.GetRootFolderUrl(); strings.HasPrefix(u, "/") {
			return u
		}
	}
	return ""
}

// isFolder reports an SPFolder or the list item of a folder (DocType Folder, content type 0x0120...).
func isFolder(rec *amrpipev1.Record) bool {
	switch b := rec.GetBody().(type) {
	case *amrpipev1.Record_Folder:
		return true
	case *amrpipev1.Record_ListItem:
		li := b.ListItem
		return strings.EqualFold(li.GetDocType(), "Folder") || isFolderContentType(li.GetContentTypeId()) ||
			isFolderContentType(rec.GetSpObject().GetContentTypeId())
	}
	return false
}

func isFolderContentType(id string) bool {
	return len(id) >= 6 && strings.EqualFold(id[:6], "0x0120")
}

// urlPath returns the path of an absolute URL without a trailing slash ("/" for the host root);
// a string without a scheme is taken as a path.
func urlPath(u string) string {
	if _, rest, ok := strings.Cut(u, "://"); ok {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return "/"
		}
		u = rest[i:]
	}
	u = strings.TrimRight(u, "/")
	if u == "" {
		return "/"
	}
	return u
}

// under reports whether path is root or below it. SharePoint URLs are case-insensitive.
func under(path, root string) bool {
	if root == "/" {
		return strings.HasPrefix(path, "/")
	}
	if len(path) < len(root) || !strings.EqualFold(path[:len(root)], root) {
		return false
	}
	return len(path) == len(root) || path[len(root)] == '/'
}
