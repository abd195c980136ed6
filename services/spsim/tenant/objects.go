package tenant

import (
	"strconv"
	"strings"
	"time"
)

// leafState is a file (or list item) as of some change number: its base state from the hash,
// overlaid with the last revision Mutate recorded.
type leafState struct {
	library    bool
	site       *siteNode
	hash       uint64
	name       string
	intID      int64
	created    time.Time
	modified   time.Time
	author     int
	modifiedBy int
	versions   int
	minor      bool
	size       int64
	deleted    bool
}

// id is the file's (or list item's) GUID; a file's list item has its own, see itemID.
func (lf *leafState) id() string { return guid(lf.hash) }

func (l *listNode) minorAt(h uint64) bool {
	return l.library && l.spec.Versions.MinorPercent > 0 && int(mix(h, saltVersion+1)%100) < l.spec.Versions.MinorPercent
}

func (l *listNode) maxVersions() int { return max(l.spec.Versions.MaxVersions, 1) }

// baseLeaf is the i-th base file (or item) of f, overlaid with rev when not nil.
func (t *Tenant) baseLeaf(f *folderRef, i int64, rev *fileRev) leafState {
	l := f.list
	h := f.leafHash(i)
	created, modified := pastTimes(h, t.epoch)
	lf := leafState{
		library: l.library, site: l.site, hash: h, name: t.leafName(f, i), intID: f.intID + 1 + i,
		created: created, modified: modified,
		author: t.userAt(l.site, mix(h, saltUser)), modifiedBy: t.userAt(l.site, mix(h, saltUser+1)),
		versions: 1 + int(mix(h, saltVersion)%uint64(l.maxVersions())), minor: l.minorAt(h),
	}
	if l.library {
		lf.size = t.sizes.at(i, f.spec.salt+uint64(f.rep))
	}
	if rev != nil {
		lf.apply(rev)
	}
	return lf
}

func (lf *leafState) apply(rev *fileRev) {
	lf.deleted, lf.versions, lf.size = rev.deleted, rev.versions, rev.size
	lf.modified, lf.modifiedBy = rev.modified, rev.modifiedBy
}

// addedLeaf is a file (or item) Mutate added to f, as of the view's revision.
func (t *Tenant) addedLeaf(f *folderRef, a addedView) *leafState {
	lf := &leafState{
		library: f.list.library, site: f.list.site, hash: a.f.hash, name: a.f.name, intID: a.f.intID,
		created: a.f.created, author: a.f.author, minor: a.f.minor,
	}
	lf.apply(&a.rev)
	return lf
}

// versionLabel is the label of the k-th version (1-based): 1.0, 2.0, ... or, with minor versions,
// 0.1, 1.0, 1.1, 2.0, ...
func versionLabel(k int, minor bool) string {
	if !minor {
		return strconv.Itoa(k) + ".0"
	}
	return strconv.Itoa(k/2) + "." + strconv.Itoa(k%2)
}

// history is the versions before the current one, oldest first, trimmed to the list's limit.
func (t *Tenant) history(lf *leafState, maxVersions int) []Version {
	keep := min(lf.versions, maxVersions)
	if keep <= 1 {
		return nil
	}
	out := make([]Version, 0, keep-1)
	span := lf.modified.Sub(lf.created)
	for k := lf.versions - keep + 1; k < lf.versions; k++ {
		v := Version{
			Label:      versionLabel(k, lf.minor),
			Modified:   lf.created.Add(span * time.Duration(k-1) / time.Duration(lf.versions-1)).Truncate(time.Second),
			ModifiedBy: t.userAt(lf.site, mix(lf.hash, uint64(k)<<8|saltUser)),
		}
		if lf.library {
			v.Size = max(1, lf.size-int64(lf.versions-k)*int64(mix(lf.hash, uint64(k))%4096))
		}
		if k%3 == 0 {
			v.Comment = "Revised section " + strconv.Itoa(k)
		}
		out = append(out, v)
	}
	return out
}

// webRel is url relative to the web (File/@Url, Folder/@Url).
func webRel(w *webNode, url string) string {
	if w.url == "/" {
		return url[1:]
	}
	return url[len(w.url)+1:]
}

// counts are a folder's sizes as of a change number.
type counts struct {
	direct, files, folders, size int64
}

func (t *Tenant) folderCounts(f *folderRef, snap int64) counts {
	d := t.ov.countsAt(t, f.url, snap)
	c := counts{
		direct: f.spec.files + d.direct, files: f.spec.subFiles + d.files,
		folders: f.spec.subFolders, size: f.spec.instanceSize(f.rep) + d.size,
	}
	for _, ch := range f.spec.children {
		c.direct += ch.count
	}
	return c
}

func (c counts) folder() Folder {
	return Folder{ItemCount: int(c.direct), SMTotalFileCount: c.files, SMTotalSize: c.size}
}

func (t *Tenant) listObject(l *listNode, c counts, opts *ReadOptions) *Object {
	created, _ := pastTimes(l.hash, t.epoch.Add(-3*365*24*time.Hour))
	typ := TypeList
	if l.library {
		typ = TypeDocumentLibrary
	}
	o := &Object{
		Type: typ, ID: l.id, ParentID: l.web.id, Name: l.spec.Title, SiteID: l.site.id, WebID: l.web.id,
		WebURL: l.web.url, ServerURL: l.url, WebRelURL: l.webRel, RootFolderID: l.rootID,
		ScopeID: l.scopeID, Author: t.userAt(l.site, l.hash), ModifiedBy: t.userAt(l.site, l.hash),
		Created: created, Modified: t.epoch.Add(-time.Hour), Title: l.spec.Title, BaseTemplate: l.spec.Template,
		ItemCount: int(c.direct), SMTotalFileCount: c.files, SMTotalSize: c.size,
	}
	if opts.IncludeExtendedMetadata {
		o.Extended = []Attr{
			{"EnableVersioning", strconv.FormatBool(l.spec.Versions.MaxVersions > 1)},
			{"EnableMinorVersions", strconv.FormatBool(l.spec.Versions.MinorPercent > 0)},
			{"MajorVersionLimit", strconv.Itoa(l.maxVersions())},
		}
	}
	return o
}

// folderObjects are the SPFolder and its SPListItem (DocType Folder).
func (t *Tenant) folderObjects(f *folderRef, c counts, opts *ReadOptions) (*Object, *Object) {
	l := f.list
	created, modified := pastTimes(f.hash, t.epoch)
	author := t.userAt(l.site, mix(f.hash, saltUser))
	folder := &Object{
		Type: TypeFolder, ID: f.id, ParentID: f.parentID, Name: f.name, SiteID: l.site.id, WebID: l.web.id,
		WebURL: l.web.url, ListID: l.id, ServerURL: f.url, WebRelURL: webRel(l.web, f.url), IntID: int(f.intID),
		ScopeID: f.scope, Author: author, ModifiedBy: author, Created: created, Modified: modified, Version: "1.0",
		ItemCount: int(c.direct), SMTotalFileCount: c.files, SMTotalSize: c.size,
	}
	item := *folder
	item.Type, item.ID, item.DocType, item.DocID, item.ContentType = TypeListItem, guid(mix(f.hash, saltItem)), "Folder", f.id, l.ctFolder
	if opts.IncludeExtendedMetadata {
		item.Extended = []Attr{{"_ModerationStatus", "0"}}
	}
	return folder, &item
}

// leafObjects are a file's SPFile and SPListItem (DocType File), or a list item's SPListItem
// alone (file is nil).
func (t *Tenant) leafObjects(f *folderRef, lf *leafState, opts *ReadOptions) (file, item *Object) {
	l := f.list
	scope := f.scope
	if l.uniqueAt(lf.intID) {
		scope = guid(mix(lf.hash, saltScope))
	}
	url := f.url + "/" + lf.name
	base := Object{
		ParentID: f.id, Name: lf.name, SiteID: l.site.id, WebID: l.web.id, WebURL: l.web.url, ListID: l.id,
		ServerURL: url, WebRelURL: webRel(l.web, url), IntID: int(lf.intID), ScopeID: scope,
		Author: lf.author, ModifiedBy: lf.modifiedBy, Created: lf.created, Modified: lf.modified,
		Version: versionLabel(lf.versions, lf.minor), IsDeleted: lf.deleted,
	}
	full := !lf.deleted
	var versions []Version
	if full && opts.IncludeVersions {
		versions = t.history(lf, l.maxVersions())
	}
	if l.library {
		file = new(Object)
		*file = base
		file.Type, file.ID, file.Size = TypeFile, lf.id(), lf.size
		file.Versions = versions
		if full && opts.IncludeExtendedMetadata {
			comment := ""
			if lf.versions > 1 {
				comment = "Updated to " + file.Version
			}
			file.Extended = []Attr{
				{"ContentVersion", strconv.Itoa(lf.versions - 1)}, {"NoExecute", "true"}, {"CheckinComment", comment},
			}
		}
		item = &base
		item.Type, item.ID, item.DocType, item.DocID, item.ContentType = TypeListItem, guid(mix(lf.hash, saltItem)), "File", file.ID, l.ctDoc
	} else {
		item = &base
		item.Type, item.ID, item.ContentType = TypeListItem, lf.id(), l.ctItem
	}
	if full {
		item.Versions = versions
		item.Fields = t.fieldValues(l, lf)
		if opts.IncludeExtendedMetadata {
			item.Extended = []Attr{{"_ModerationStatus", "0"}}
		}
	}
	return file, item
}

// fieldValues are a file's or item's column values; an edit (a new version) changes them.
func (t *Tenant) fieldValues(l *listNode, lf *leafState) []Field {
	n := len(l.spec.Fields)
	if !l.library {
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]Field, 0, n)
	h := mix(mix(lf.hash, saltField), uint64(lf.versions))
	if !l.library {
		out = append(out, Field{Name: "Title", Type: FieldText, Value: t.textValue(h)})
	}
	for i, fs := range l.spec.Fields {
		out = append(out, Field{Name: fs.Name, Type: fs.Type, Value: t.fieldValue(fs, mix(h, uint64(i)+1), lf.site)})
	}
	return out
}

func (t *Tenant) textValue(h uint64) string {
	stem := fileStems[h%uint64(len(fileStems))]
	if t.oddEvery > 0 && mix(h, 7)%uint64(t.oddEvery) == 0 {
		stem = oddStems[mix(h, 11)%uint64(len(oddStems))]
	}
	return stem + " " + strconv.FormatUint(mix(h, 3)%10000, 10)
}

func (t *Tenant) fieldValue(fs FieldSpec, h uint64, s *siteNode) string {
	switch fs.Type {
	case FieldNumber:
		return strconv.FormatFloat(float64(h%1_000_000)/100, 'f', -1, 64)
	case FieldDateTime:
		return t.epoch.Add(-time.Duration(h%(2*365*24*3600)) * time.Second).Format("2006-01-02T15:04:05Z")
	case FieldUser:
		return strconv.Itoa(t.userAt(s, h))
	case FieldBoolean:
		return strconv.Itoa(int(h % 2))
	case FieldNote:
		return strings.Join([]string{t.textValue(h), "Follow-up: " + t.textValue(mix(h, 1)), "Owner & reviewer agreed."}, "\n")
	case FieldChoice:
		return fs.Choices[h%uint64(len(fs.Choices))]
	}
	return t.textValue(h)
}
