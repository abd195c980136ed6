package tenant

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// folderRef is one folder instance (or a list's root folder) reached by descending the compiled
// spec tree. Walks keep one per level, so memory is O(depth).
type folderRef struct {
	list     *listNode
	spec     *specNode
	rep      int64 // instance index among the spec's repeats
	name     string
	url      string // server-relative
	hash     uint64
	id       string
	parentID string
	// intID is the folder's list item id: its preorder rank in the list (folder, its files, then
	// its subfolders). The root folder is not an item and has 0.
	intID  int64
	scope  string // effective security scope
	unique bool   // breaks inheritance (a list root always does)
}

func (t *Tenant) rootRef(l *listNode) folderRef {
	return folderRef{
		list: l, spec: l.root, name: l.rootName, url: l.url, hash: mix(l.hash, saltRootFolder),
		id: l.rootID, parentID: l.web.id, scope: l.scopeID, unique: true,
	}
}

func (f *folderRef) isRoot() bool { return f.intID == 0 }

// child is the r-th instance of the ci-th child spec of f.
func (f *folderRef) child(ci int, r int64) folderRef {
	c := f.spec.children[ci]
	name := c.instanceName(r)
	h := hashString(f.hash, name)
	ref := folderRef{
		list: f.list, spec: c, rep: r, name: name, url: f.url + "/" + name, hash: h, id: guid(h),
		parentID: f.id, intID: f.intID + 1 + f.spec.childOffset[ci] + r*(1+c.nodes()), scope: f.scope,
	}
	if f.list.uniqueAt(ref.intID) {
		ref.unique = true
		ref.scope = guid(mix(h, saltScope))
	}
	return ref
}

func (l *listNode) uniqueAt(intID int64) bool {
	return l.spec.UniqueEvery > 0 && intID > 0 && intID%int64(l.spec.UniqueEvery) == 0 && !l.inherits[intID]
}

// leafHash is the identity hash of the i-th base file (or item) of f.
func (f *folderRef) leafHash(i int64) uint64 { return mix(f.hash, uint64(i)<<1|1) }

// leafName is the name of the i-th base file (or item) of f.
func (t *Tenant) leafName(f *folderRef, i int64) string {
	if f.list.library {
		return fileName(f.leafHash(i), i, t.oddEvery)
	}
	return itemName(f.intID + 1 + i)
}

// locateRank finds the item with list item id k (1..nodes): its folder and, for a file or item,
// its index there (-1 when k is the folder itself). O(depth x subfolder specs).
func (t *Tenant) locateRank(l *listNode, k int64) (folderRef, int64, bool) {
	f := t.rootRef(l)
	if k < 1 || k > l.root.nodes() {
		return folderRef{}, 0, false
	}
descend:
	for {
		if k == f.intID {
			return f, -1, true
		}
		rel := k - f.intID - 1
		if rel < f.spec.files {
			return f, rel, true
		}
		for ci, c := range f.spec.children {
			o := f.spec.childOffset[ci]
			if rel < o+c.count*(1+c.nodes()) {
				f = f.child(ci, (rel-o)/(1+c.nodes()))
				continue descend
			}
		}
		return folderRef{}, 0, false
	}
}

// matchChild finds the subfolder of f named name (case-insensitively).
func (f *folderRef) matchChild(name string) (folderRef, bool) {
	for ci, c := range f.spec.children {
		if !c.repeated {
			if strings.EqualFold(name, c.name) {
				return f.child(ci, 0), true
			}
			continue
		}
		if len(name) <= len(c.name)+1 || name[len(c.name)] != '-' || !strings.EqualFold(name[:len(c.name)], c.name) {
			continue
		}
		n, err := strconv.ParseInt(name[len(c.name)+1:], 10, 64)
		if err == nil && n >= 1 && n <= c.count && repeatName(c.name, n-1)[len(c.name):] == name[len(c.name):] {
			return f.child(ci, n-1), true
		}
	}
	return folderRef{}, false
}

// location is what a URL resolved to at a change number.
type location struct {
	web    *webNode
	list   *listNode // nil for a web
	folder folderRef // the folder, or the file's folder
	leaf   *leafState
}

// locate resolves a server-relative URL (any candidate form) as of change number snap.
func (t *Tenant) locate(raw string, snap int64) (location, error) {
	var firstErr error
	for _, u := range candidateURLs(raw) {
		loc, err := t.locateOne(u, snap)
		if err == nil {
			return loc, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return location{}, fmt.Errorf("resolve %q: %w", raw, firstErr)
}

func (t *Tenant) locateOne(u string, snap int64) (location, error) {
	w := t.webOf(u)
	if w == nil {
		return location{}, ErrNotFound
	}
	loc := location{web: w}
	if len(u) == len(w.url) {
		return loc, nil
	}
	rel := u[len(w.url)+1:]
	for _, l := range w.lists {
		if hasPathPrefix(rel, l.webRel) {
			loc.list = l
			rel = strings.TrimPrefix(rel[len(l.webRel):], "/")
			break
		}
	}
	if loc.list == nil {
		return location{}, ErrNotFound
	}
	loc.folder = t.rootRef(loc.list)
	for rel != "" {
		seg, rest, _ := strings.Cut(rel, "/")
		if c, ok := loc.folder.matchChild(seg); ok {
			loc.folder, rel = c, rest
			continue
		}
		if rest != "" {
			return location{}, ErrNotFound
		}
		lf, ok := t.findLeaf(&loc.folder, seg, snap)
		if !ok {
			return location{}, ErrNotFound
		}
		loc.leaf = lf
		break
	}
	return loc, nil
}

// findLeaf finds a live file (or list item) of f by name as of snap.
func (t *Tenant) findLeaf(f *folderRef, name string, snap int64) (*leafState, bool) {
	view := t.folderView(f.url, snap)
	if i, ok := t.baseLeafIndex(f, name); ok {
		lf := t.baseLeaf(f, i, view.rev(i))
		return &lf, !lf.deleted
	}
	for _, a := range view.added {
		if !a.rev.deleted && strings.EqualFold(a.f.name, name) {
			return t.addedLeaf(f, a), true
		}
	}
	return nil, false
}

// baseLeafIndex maps a name back to the index of a base file or item of f.
func (t *Tenant) baseLeafIndex(f *folderRef, name string) (int64, bool) {
	if f.list.library {
		i, ok := fileIndex(name)
		return i, ok && i < f.spec.files && strings.EqualFold(t.leafName(f, i), name)
	}
	id, ok := itemIntID(name)
	i := id - f.intID - 1
	return i, ok && i >= 0 && i < f.spec.files
}

// pathUnescape decodes a percent-encoded path.
func pathUnescape(s string) (string, error) { return url.PathUnescape(s) }
