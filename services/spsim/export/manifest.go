package export

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// Indentation of the manifest: SPObjects > SPObject > child > collection > entry.
const (
	ind1 = "  "
	ind2 = "    "
	ind3 = "      "
	ind4 = "        "
)

// writeObject appends one SPObject.
func (w *Writer) writeObject(o *tenant.Object) error {
	switch o.Type {
	case tenant.TypeList, tenant.TypeDocumentLibrary, tenant.TypeFolder, tenant.TypeFile,
		tenant.TypeListItem, tenant.TypeRoles, tenant.TypeRoleAssignments:
	default:
		return fmt.Errorf("export: object %s: unknown object type %q", o.ID, o.Type)
	}
	w.open(ind1, "SPObject", func() {
		w.attr("Id", o.ID)
		w.attrConst("ObjectType", string(o.Type))
		w.attr("ParentId", spObjectParent(o))
		if o.IsDeleted {
			w.attrConst("IsDeleted", "true")
		}
		w.attr("ParentWebId", o.WebID)
		w.attrEnc("ParentWebUrl", o.WebURL)
		if o.ServerURL != "" {
			w.attrEnc("Url", o.ServerURL)
		}
	})
	if o.IsDeleted {
		// An incremental read reports a deletion by identity only: there is nothing left to describe.
		w.endEmpty()
		return nil
	}
	w.endOpen()
	switch o.Type {
	case tenant.TypeList, tenant.TypeDocumentLibrary:
		w.writeList(o)
	case tenant.TypeFolder:
		w.writeFolder(o)
	case tenant.TypeFile:
		w.writeFile(o)
	case tenant.TypeListItem:
		w.writeListItem(o)
	case tenant.TypeRoles:
		w.writeRoles(o)
	case tenant.TypeRoleAssignments:
		w.writeRoleAssignments(o)
	}
	w.closeTag(ind1, "SPObject")
	return nil
}

// spObjectParent is SPObject/@ParentId: the list for a list item (as in the SharePoint samples),
// otherwise the object's parent (folder, or web for lists and security objects).
func spObjectParent(o *tenant.Object) string {
	if o.Type == tenant.TypeListItem && o.ListID != "" {
		return o.ListID
	}
	return o.ParentID
}

func (w *Writer) extended(o *tenant.Object) {
	for _, a := range o.Extended {
		w.attrEnc(a.Name, a.Value)
	}
}

func (w *Writer) writeList(o *tenant.Object) {
	name, baseType := "List", "GenericList"
	if o.Type == tenant.TypeDocumentLibrary {
		name, baseType = "DocumentLibrary", "DocumentLibrary"
	}
	w.open(ind2, name, func() {
		w.attr("Id", o.ID)
		w.attrEnc("Title", o.Title)
		w.attrNonEmpty("RootFolderId", o.RootFolderID)
		w.attrEnc("RootFolderUrl", o.ServerURL)
		w.attr("ParentWebId", o.WebID)
		w.attrEnc("ParentWebUrl", o.WebURL)
		w.attrConst("BaseType", baseType)
		w.attrConst("BaseTemplate", listTemplateName(o.BaseTemplate))
		w.attrNonEmpty("ScopeId", o.ScopeID)
		w.extended(o)
	})
	w.endEmpty()
}

// listTemplateName is the SPListTemplateType name that .NET serialises for BaseTemplate.
func listTemplateName(t int) string {
	switch t {
	case 100:
		return "GenericList"
	case 101:
		return "DocumentLibrary"
	case 102:
		return "Survey"
	case 103:
		return "Links"
	case 104:
		return "Announcements"
	case 105:
		return "Contacts"
	case 106:
		return "Events"
	case 107:
		return "Tasks"
	case 108:
		return "DiscussionBoard"
	case 109:
		return "PictureLibrary"
	case 119:
		return "WebPageLibrary"
	}
	return strconv.Itoa(t)
}

func (w *Writer) writeFolder(o *tenant.Object) {
	w.open(ind2, "Folder", func() {
		w.attr("Id", o.ID)
		w.attrEnc("Url", o.WebRelURL)
		w.attrEnc("Name", o.Name)
		w.attr("ParentFolderId", o.ParentID)
		w.attr("ParentWebId", o.WebID)
		w.attrEnc("ParentWebUrl", o.WebURL)
		w.attr("ContainingDocumentLibrary", o.ListID)
		if o.IntID != 0 {
			w.attrInt("ListItemIntId", int64(o.IntID))
		}
		w.attrUser("Author", o.Author)
		w.attrUser("ModifiedBy", o.ModifiedBy)
		w.attrTime("TimeCreated", o.Created)
		w.attrTime("TimeLastModified", o.Modified)
		w.attrNonEmpty("ScopeId", o.ScopeID)
		w.extended(o)
	})
	w.endEmpty()
}

// fileLevel is SPFileLevel: 1 Published for a major version, 2 Draft for a minor one.
func fileLevel(version string) int64 {
	if _, minor, ok := strings.Cut(version, "."); ok && strings.Trim(minor, "0") != "" {
		return 2
	}
	return 1
}

// fileIdentity writes the attributes a file and each of its versions share.
func (w *Writer) fileIdentity(o *tenant.Object) {
	w.attrEnc("Url", o.WebRelURL)
	w.attr("Id", o.ID)
	w.attr("ParentWebId", o.WebID)
	w.attrEnc("ParentWebUrl", o.WebURL)
	w.attrEnc("Name", o.Name)
	if o.IntID != 0 {
		w.attrInt("ListItemIntId", int64(o.IntID))
	}
	w.attr("ListId", o.ListID)
	w.attr("ParentId", o.ParentID)
}

func (w *Writer) writeFile(o *tenant.Object) {
	w.open(ind2, "File", func() {
		w.fileIdentity(o)
		w.attrNonEmpty("ScopeId", o.ScopeID)
		w.attrTime("TimeCreated", o.Created)
		w.attrTime("TimeLastModified", o.Modified)
		w.attrEnc("Version", o.Version)
		w.attrUser("Author", o.Author)
		w.attrUser("ModifiedBy", o.ModifiedBy)
		w.attrInt("FileSize", o.Size)
		w.attrInt("Level", fileLevel(o.Version))
		w.extended(o)
	})
	if !w.endChildren(len(o.Versions)) {
		return
	}
	writeEntries(w, ind3, "Versions", "File", o.Versions, func(v *tenant.Version) {
		w.fileIdentity(o)
		w.attrTime("TimeCreated", o.Created)
		w.attrTime("TimeLastModified", v.Modified)
		w.attrEnc("Version", v.Label)
		w.attrUser("Author", o.Author)
		w.attrUser("ModifiedBy", v.ModifiedBy)
		w.attrInt("FileSize", v.Size)
		w.attrInt("Level", fileLevel(v.Label))
		if v.Comment != "" {
			w.attrEnc("CheckinComment", v.Comment)
		}
	})
	w.closeTag(ind2, "File")
}

// dirName is ListItem/@DirName: the server-relative parent path without the leading slash.
func dirName(serverURL string) string {
	dir := serverURL
	if i := strings.LastIndexByte(dir, '/'); i >= 0 {
		dir = dir[:i]
	}
	return strings.TrimPrefix(dir, "/")
}

func (w *Writer) writeListItem(o *tenant.Object) {
	w.open(ind2, "ListItem", func() {
		w.attrEnc("FileUrl", o.WebRelURL)
		if o.DocType != "" {
			w.attr("DocType", o.DocType)
		}
		w.attr("ParentFolderId", o.ParentID)
		w.attrInt("Order", int64(o.IntID)*100)
		w.attr("Id", o.ID)
		w.attr("ParentWebId", o.WebID)
		w.attr("ParentListId", o.ListID)
		w.attrEnc("Name", o.Name)
		w.attrEnc("DirName", dirName(o.ServerURL))
		w.attrInt("IntId", int64(o.IntID))
		w.attrNonEmpty("DocId", o.DocID)
		w.attrEnc("Version", o.Version)
		w.attrNonEmpty("ContentTypeId", o.ContentType)
		w.attrUser("Author", o.Author)
		w.attrUser("ModifiedBy", o.ModifiedBy)
		w.attrTime("TimeCreated", o.Created)
		w.attrTime("TimeLastModified", o.Modified)
		w.attrConst("ModerationStatus", "Approved")
		w.attrNonEmpty("ScopeId", o.ScopeID)
		w.extended(o)
	})
	w.endOpen()
	// Fields as the tenant gives them. A folder's item also carries the hidden SMTotalFileCount
	// and SMTotalSize when Options.FolderTotals asks for them: whether AMR writes them is not
	// documented (docs/amr-protocol.md §4.1, §7.4 row 7), so by default it does not.
	writeEntries(w, ind3, "Fields", "Field", w.fields(o), func(f *tenant.Field) {
		w.attrEnc("Name", f.Name)
		w.attrEnc("Value", f.Value)
		w.attr("Type", f.Type)
	})
	if len(o.Versions) > 0 {
		writeEntries(w, ind3, "Versions", "ListItem", o.Versions, func(v *tenant.Version) {
			w.attr("Id", o.ID)
			w.attrInt("IntId", int64(o.IntID))
			w.attrEnc("Version", v.Label)
			w.attrUser("Author", o.Author)
			w.attrUser("ModifiedBy", v.ModifiedBy)
			w.attrTime("TimeCreated", o.Created)
			w.attrTime("TimeLastModified", v.Modified)
			w.attrConst("ModerationStatus", "Approved")
		})
	}
	w.closeTag(ind2, "ListItem")
}

// writeEntries writes the collection element coll (at indent) holding one empty element entry per
// item, whose attributes attrs writes; an empty collection is written as <coll />.
// fields are a list item's Fields as written: the tenant's, plus a folder's totals when
// Options.FolderTotals is set (lookup-type fields, as public field inventories list them).
func (w *Writer) fields(o *tenant.Object) []tenant.Field {
	if !w.opts.FolderTotals || o.DocType != "Folder" || o.IsDeleted {
		return o.Fields
	}
	return append(slices.Clone(o.Fields),
		tenant.Field{Name: "SMTotalFileCount", Type: "Lookup", Value: strconv.FormatInt(o.SMTotalFileCount, 10)},
		tenant.Field{Name: "SMTotalSize", Type: "Lookup", Value: strconv.FormatInt(o.SMTotalSize, 10)})
}

func writeEntries[T any](w *Writer, indent, coll, entry string, items []T, attrs func(*T)) {
	if !w.emptyOrOpen(indent, coll, len(items)) {
		return
	}
	inner := indent + ind1
	for i := range items {
		w.open(inner, entry, func() { attrs(&items[i]) })
		w.endEmpty()
	}
	w.closeTag(indent, coll)
}

func (w *Writer) writeRoles(o *tenant.Object) {
	writeEntries(w, ind2, "Roles", "Role", o.Roles, func(r *tenant.Role) {
		w.attrInt("RoleId", int64(r.RoleID))
		w.attrEnc("Title", r.Title)
		w.attrEnc("Description", r.Description)
		w.attr("PermMask", r.PermMask)
		w.attrBool("Hidden", r.Hidden)
		w.attrInt("RoleOrder", int64(r.RoleOrder))
		w.attrInt("Type", int64(r.Type))
	})
}

func (w *Writer) writeRoleAssignments(o *tenant.Object) {
	if !w.emptyOrOpen(ind2, "RoleAssignments", len(o.RoleAssignments)) {
		return
	}
	for i := range o.RoleAssignments {
		ra := &o.RoleAssignments[i]
		w.open(ind3, "RoleAssignment", func() {
			w.attr("ScopeId", ra.ScopeID)
			w.attr("RoleDefWebId", ra.RoleDefWebID)
			w.attrEnc("RoleDefWebUrl", ra.RoleDefWebURL)
			w.attr("ObjectId", ra.ObjectID)
			w.attrInt("ObjectType", int64(ra.ObjectType))
			w.attrEnc("ObjectUrl", ra.ObjectURL)
			w.attrConst("AnonymousPermMask", "0")
		})
		if !w.endChildren(len(ra.Assignments)) {
			continue
		}
		for _, a := range ra.Assignments {
			w.element(ind4, "Assignment")
			w.attrInt("RoleId", int64(a.RoleID))
			w.attrInt("PrincipalId", int64(a.PrincipalID))
			w.endEmpty()
		}
		w.closeTag(ind3, "RoleAssignment")
	}
	w.closeTag(ind2, "RoleAssignments")
}
