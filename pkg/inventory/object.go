package inventory

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Object is the latest state of a content object (a list or library, folder, file or list item).
type Object struct {
	Tenant string
	Type   string // SPObject/@ObjectType: SPList, SPDocumentLibrary, SPFolder, SPFile, SPListItem
	ID     string
	// URL is server-relative (SPObject/@Url).
	URL  string
	Name string
	// ParentID is the containing folder (the web, for a list); ListID the owning list.
	ParentID, ListID string
	// DocID is, on the list item of a file or folder, that file's or folder's id.
	DocID               string
	Size                int64
	Created, Modified   time.Time
	Author, Editor      int64 // principal ids of the object's job (UserGroup.xml)
	AuthorLogin         string
	EditorLogin         string
	Version             string    // label of the current version, e.g. "3.0"
	VersionCount        int64     // versions exported (IncludeVersions), 0 otherwise
	Versions            []Version // the exported versions, oldest first
	UniquePermissions   bool
	Deleted             bool
	FirstPass, LastPass int64
	LastJob             string
	// Scope is the scope of the pass that last wrote the object.
	Scope string
}

// ObjectOf is the state a content record gives its object (objectOf): its server-relative URL,
// type, size and times, for a look at records (amrctl tail) as the inventory sees them.
func ObjectOf(r *amrpipev1.Record) Object { return objectOf(r) }

// objectOf maps a content record to its compared state. The URL is SPObject/@Url (server-relative)
// when present, else the body's own. It returns a value: the ingest converts every record, and
// a pointer would be an allocation each.
func objectOf(r *amrpipev1.Record) Object {
	h := r.GetSpObject()
	o := Object{Type: r.GetObjectType(), ID: r.GetObjectId(), URL: h.GetServerRelativeUrl(), Name: h.GetName(),
		ParentID: h.GetParentId(), Deleted: h.GetIsDeleted()}
	switch body := r.GetBody().(type) {
	case *amrpipev1.Record_File:
		f := body.File
		o.URL = or(o.URL, f.GetServerRelativeUrl())
		o.Name, o.ParentID, o.ListID = or(f.GetName(), o.Name), or(f.GetParentId(), o.ParentID), f.GetListId()
		o.Size, o.Author, o.Editor, o.Version = f.GetFileSize(), f.GetAuthor(), f.GetModifiedBy(), f.GetVersion()
		o.Created, o.Modified = ts(f.GetTimeCreated()), ts(f.GetTimeLastModified())
		o.VersionCount = int64(len(f.GetVersions()))
	case *amrpipev1.Record_Folder:
		f := body.Folder
		o.URL = or(o.URL, f.GetServerRelativeUrl())
		o.Name, o.ParentID, o.ListID = or(f.GetName(), o.Name), or(f.GetParentFolderId(), o.ParentID), f.GetContainingDocumentLibrary()
		o.Author, o.Editor = f.GetAuthor(), f.GetModifiedBy()
		o.Created, o.Modified = ts(f.GetTimeCreated()), ts(f.GetTimeLastModified())
	case *amrpipev1.Record_ListItem:
		it := body.ListItem
		o.URL = or(o.URL, it.GetServerRelativeUrl())
		o.Name, o.ParentID, o.ListID, o.DocID = or(it.GetName(), o.Name), or(it.GetParentFolderId(), o.ParentID), it.GetParentListId(), it.GetDocId()
		o.Author, o.Editor, o.Version = it.GetAuthor(), it.GetModifiedBy(), it.GetVersion()
		o.Created, o.Modified = ts(it.GetTimeCreated()), ts(it.GetTimeLastModified())
		o.VersionCount = int64(len(it.GetVersions()))
	case *amrpipev1.Record_List:
		l := body.List
		o.URL = or(o.URL, l.GetRootFolderUrl())
		o.Name, o.ParentID = or(l.GetTitle(), o.Name), or(l.GetParentWebId(), o.ParentID)
	}
	return o
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func ts(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime().UTC()
}

// hash digests the compared fields (schema.go's compared), in their order: FNV-1a over each
// string and a 0 byte, and over each number's 8 little-endian bytes. Written out rather than
// through hash/fnv, whose Write takes each string as a new []byte (the ingest hashes every
// record); the digests are the same.
func (o *Object) hash() int64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	str := func(s string) {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
		h *= prime // the 0 byte after each string: h ^ 0 is h
	}
	num := func(v int64) {
		for i := 0; i < 8; i++ {
			h = (h ^ uint64(byte(v>>(8*i)))) * prime
		}
	}
	str(o.URL)
	str(o.Name)
	str(o.ParentID)
	str(o.ListID)
	num(o.Size)
	num(micros(o.Modified))
	num(o.Author)
	num(o.Editor)
	str(o.Version)
	num(o.VersionCount)
	return int64(h)
}
