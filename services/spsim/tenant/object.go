// Package tenant is the simulator's synthetic SharePoint tenant: sites, webs, lists and libraries,
// folder trees, files with versions, list items, users, groups and permissions, all derived
// deterministically from a seed and generated lazily, plus a change log so change tokens work.
package tenant

import "time"

// ObjectType is the SPObject/@ObjectType of a manifest entry.
type ObjectType string

// The object types AMR writes into Manifest.xml.
const (
	TypeList            ObjectType = "SPList"
	TypeDocumentLibrary ObjectType = "SPDocumentLibrary"
	TypeFolder          ObjectType = "SPFolder"
	TypeFile            ObjectType = "SPFile"
	TypeListItem        ObjectType = "SPListItem"
	TypeRoles           ObjectType = "DeploymentRoles"
	TypeRoleAssignments ObjectType = "DeploymentRoleAssignments"
)

// ReadOptions mirrors SP.AsyncReadOptions.
type ReadOptions struct {
	IncludeVersions              bool
	IncludeSecurity              bool
	IncludePermission            bool
	IncludeDirectDescendantsOnly bool
	IncludeExtendedMetadata      bool
	StartChangeToken             string
}

// Object is one SPObject of a manifest, as the export writer needs it. A file yields two objects
// (SPFile and its SPListItem with DocType File), a folder two (SPFolder and its SPListItem with
// DocType Folder), a plain list item one.
type Object struct {
	Type ObjectType
	ID   string // GUID
	// ParentID is the containing folder's GUID (the list's root folder for top-level objects);
	// for a list or library, the web's GUID.
	ParentID string
	Name     string
	SiteID   string
	WebID    string
	WebURL   string // server-relative, e.g. "/sites/hr" or "/sites/hr/team"
	ListID   string // owning list (empty for a list itself)
	// RootFolderID is a list's root folder GUID (lists only): List/@RootFolderId, and the ParentID
	// of the list's top-level folders, files and items.
	RootFolderID string
	ServerURL    string // server-relative URL, SPObject/@Url
	WebRelURL    string // web-relative URL, File/@Url, Folder/@Url, ListItem/@FileUrl
	IntID        int    // ListItemIntId / IntId (0 for lists)
	ContentType  string // ContentTypeId
	DocType      string // "File", "Folder" or "" (list items only)
	// DocID is, on the SPListItem of a file or folder, the GUID of that SPFile or SPFolder
	// (ListItem/@DocId); the list item itself has its own ID.
	DocID        string
	ScopeID      string // security scope GUID
	Author       int    // user id, points into UserGroup.xml
	ModifiedBy   int
	Created      time.Time // UTC
	Modified     time.Time // UTC
	Version      string    // "3.0", "2.1"
	Size         int64     // files only
	Title        string    // lists only
	BaseTemplate int       // lists only: 101 library, 100 generic list
	ItemCount    int       // lists and folders: direct children
	// SMTotalFileCount and SMTotalSize are set on folders, their list items and list roots: every
	// file below, recursively, and its bytes. Whether AMR writes them into a folder item's Fields is
	// not documented (docs/amr-protocol.md §4.1), so they are not Fields: the export writes them only
	// when asked to (export.Options.FolderTotals).
	SMTotalFileCount int64
	SMTotalSize      int64
	Fields           []Field   // list items: field values
	Versions         []Version // files and list items, when IncludeVersions
	Extended         []Attr    // extra attributes, when IncludeExtendedMetadata
	IsDeleted        bool      // incremental reads: the object was deleted since the token
	// Roles and RoleAssignments are set only on the DeploymentRoles and DeploymentRoleAssignments
	// objects that IncludePermission adds.
	Roles           []Role
	RoleAssignments []RoleAssignment
}

// Field is one ListItem field value.
type Field struct {
	Name  string
	Type  string // "Text", "Number", "DateTime", "User", "Boolean", "Note"
	Value string
}

// Attr is an attribute the export writes as-is (extended metadata).
type Attr struct{ Name, Value string }

// Version is a historical version of a file or list item.
type Version struct {
	Label      string // "1.0", "1.1"
	Size       int64
	Modified   time.Time
	ModifiedBy int
	Comment    string
}

// Role is a role definition.
type Role struct {
	RoleID      int
	Title       string
	Description string
	PermMask    string
	Hidden      bool
	RoleOrder   int
	Type        int
}

// RoleAssignment is the set of assignments on one securable object with unique permissions.
type RoleAssignment struct {
	ScopeID       string
	RoleDefWebID  string
	RoleDefWebURL string
	ObjectID      string
	ObjectType    int // 1 list, 2 item
	ObjectURL     string
	Assignments   []Assignment
}

// Assignment grants a role to a principal.
type Assignment struct{ RoleID, PrincipalID int }

// User is a site-collection user (UserGroup.xml).
type User struct {
	ID          int
	Name        string
	Login       string
	Email       string
	SystemID    string // base64
	IsSiteAdmin bool
	IsDeleted   bool
	Flags       int
}

// Group is a site-collection group (UserGroup.xml).
type Group struct {
	ID          int
	Name        string
	Description string
	Owner       int
	OwnerIsUser bool
	Members     []int
}
