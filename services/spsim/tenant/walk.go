package tenant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Resolve resolves a list, library, folder or file URL (server-relative or absolute, encoded or
// not). A file or list item resolves to a TargetFile target together with an error wrapping
// ErrNotContainer, since AMR does not read single files; a web URL is ErrNotContainer too.
func (t *Tenant) Resolve(serverRelURL string) (Target, error) {
	loc, err := t.locate(serverRelURL, t.currentChange())
	if err != nil {
		return Target{}, err
	}
	return loc.target()
}

func (t *Tenant) currentChange() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.log.last
}

func (loc *location) target() (Target, error) {
	if loc.list == nil {
		return Target{}, fmt.Errorf("resolve %s: a web: %w", loc.web.url, ErrNotContainer)
	}
	tg := Target{
		Kind: TargetFolder, ID: loc.folder.id, ParentID: loc.folder.parentID, SiteID: loc.web.site.id,
		WebID: loc.web.id, WebURL: loc.web.url, ListID: loc.list.id, ServerRelativeURL: loc.folder.url,
	}
	switch {
	case loc.leaf != nil:
		tg.Kind, tg.ID, tg.ParentID = TargetFile, loc.leaf.id(), loc.folder.id
		tg.ServerRelativeURL = loc.folder.url + "/" + loc.leaf.name
		return tg, fmt.Errorf("resolve %s: a file: %w", tg.ServerRelativeURL, ErrNotContainer)
	case loc.folder.isRoot():
		tg.Kind, tg.ID = TargetList, loc.list.id
	}
	return tg, nil
}

// container resolves a URL that must be a list or folder, as of snap.
func (t *Tenant) container(url string, snap int64) (location, error) {
	loc, err := t.locate(url, snap)
	if err != nil {
		return location{}, err
	}
	if _, err := loc.target(); err != nil {
		return location{}, err
	}
	return loc, nil
}

// Folder describes a folder, or a list's root folder, with its sizes now.
func (t *Tenant) Folder(serverRelURL string) (Folder, error) {
	snap := t.currentChange()
	loc, err := t.container(serverRelURL, snap)
	if err != nil {
		return Folder{}, err
	}
	return t.publicFolder(&loc.folder, snap), nil
}

func (t *Tenant) publicFolder(f *folderRef, snap int64) Folder {
	out := t.folderCounts(f, snap).folder()
	out.ID, out.Name, out.ServerRelativeURL = f.id, f.name, f.url
	for _, ch := range f.spec.children {
		out.FolderChildCount += int(ch.count)
	}
	if f.isRoot() {
		out.Modified = t.epoch.Add(-time.Hour) // the list's, as listObject writes it
	} else {
		_, out.Modified = pastTimes(f.hash, t.epoch) // as folderObjects writes it
	}
	return out
}

// Subfolders lists a folder's direct subfolders.
func (t *Tenant) Subfolders(serverRelURL string) ([]Folder, error) {
	snap := t.currentChange()
	loc, err := t.container(serverRelURL, snap)
	if err != nil {
		return nil, err
	}
	var out []Folder
	f := &loc.folder
	for ci, c := range f.spec.children {
		for r := range c.count {
			cf := f.child(ci, r)
			out = append(out, t.publicFolder(&cf, snap))
		}
	}
	return out, nil
}

// walker is the state of one Walk: a snapshot change number, the options, and the role
// assignments collected for IncludePermission.
type walker struct {
	t      *Tenant
	ctx    context.Context
	opts   *ReadOptions
	fn     func(*Object) error
	snap   int64
	n      int
	perms  []RoleAssignment
	listRA map[*listNode]bool
}

// errStop carries fn's error out of a walk so it is wrapped exactly once.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

func unwrapStop(err error) error {
	var stop errStop
	if errors.As(err, &stop) {
		return stop.err
	}
	return err
}

func (w *walker) emit(o *Object) error {
	if o == nil {
		return nil
	}
	w.n++
	if w.n&255 == 0 {
		if err := w.ctx.Err(); err != nil {
			return err
		}
	}
	if err := w.fn(o); err != nil {
		return errStop{err}
	}
	return nil
}

func (w *walker) emit2(a, b *Object) error {
	if err := w.emit(a); err != nil {
		return err
	}
	return w.emit(b)
}

// Walk yields every object an AMR job over targets must export, in a stable depth-first order:
// per target, a list yields its SPList/SPDocumentLibrary object and a folder its SPFolder and
// SPListItem, then everything below (each folder's files or items, then its subfolders); with
// IncludeDirectDescendantsOnly only the direct children. With StartChangeToken only objects changed
// since the token (deleted ones with IsDeleted). With IncludePermission a DeploymentRoles and a
// DeploymentRoleAssignments object follow. Memory is O(depth) plus what the options collect;
// every target and the token are checked before the first object is yielded.
func (t *Tenant) Walk(ctx context.Context, targets []Target, opts ReadOptions, fn func(*Object) error) error {
	snap, from, recs, err := t.snapshot(opts.StartChangeToken)
	if err != nil {
		return err
	}
	locs, err := t.targets(targets, snap)
	if err != nil {
		return err
	}
	w := &walker{t: t, ctx: ctx, opts: &opts, fn: fn, snap: snap, listRA: map[*listNode]bool{}}
	for i := range locs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walk: %w", err)
		}
		loc := &locs[i]
		if opts.StartChangeToken != "" {
			err = w.changes(loc, recs, from)
		} else {
			err = w.full(loc)
		}
		if err != nil {
			return fmt.Errorf("walk %s: %w", loc.folder.url, unwrapStop(err))
		}
	}
	if opts.IncludePermission && len(locs) > 0 {
		if err := w.permissions(&locs[0]); err != nil {
			return fmt.Errorf("walk permissions: %w", unwrapStop(err))
		}
	}
	return nil
}

func (t *Tenant) targets(targets []Target, snap int64) ([]location, error) {
	locs := make([]location, 0, len(targets))
	for _, tg := range targets {
		if tg.Kind == TargetFile {
			return nil, fmt.Errorf("target %s: %w", tg.ServerRelativeURL, ErrNotContainer)
		}
		loc, err := t.container(tg.ServerRelativeURL, snap)
		if err != nil {
			return nil, err
		}
		locs = append(locs, loc)
	}
	return locs, nil
}

// top yields the target object itself: the list, or the folder's two objects.
func (w *walker) top(loc *location) error {
	l, f := loc.list, &loc.folder
	w.noteList(l)
	c := w.t.folderCounts(f, w.snap)
	if f.isRoot() {
		return w.emit(w.t.listObject(l, c, w.opts))
	}
	w.noteFolder(f)
	return w.emit2(w.t.folderObjects(f, c, w.opts))
}

func (w *walker) full(loc *location) error {
	if err := w.top(loc); err != nil {
		return err
	}
	return w.folder(&loc.folder, w.opts.IncludeDirectDescendantsOnly)
}

// folder yields f's files (or items), then each subfolder and, unless shallow, its contents.
func (w *walker) folder(f *folderRef, shallow bool) error {
	t := w.t
	view := t.folderView(f.url, w.snap)
	for i := range f.spec.files {
		lf := t.baseLeaf(f, i, view.rev(i))
		if lf.deleted {
			continue
		}
		if err := w.leaf(f, &lf); err != nil {
			return err
		}
	}
	for _, a := range view.added {
		if a.rev.deleted {
			continue
		}
		if err := w.leaf(f, t.addedLeaf(f, a)); err != nil {
			return err
		}
	}
	for ci, c := range f.spec.children {
		for r := range c.count {
			cf := f.child(ci, r)
			w.noteFolder(&cf)
			if err := w.emit2(t.folderObjects(&cf, t.folderCounts(&cf, w.snap), w.opts)); err != nil {
				return err
			}
			if shallow {
				continue
			}
			if err := w.folder(&cf, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *walker) leaf(f *folderRef, lf *leafState) error {
	file, item := w.t.leafObjects(f, lf, w.opts)
	if w.opts.IncludePermission && !lf.deleted && f.list.uniqueAt(lf.intID) {
		w.perms = append(w.perms, w.t.roleAssignment(f.list, item.ScopeID, lf.id(), 2, item.WebRelURL))
	}
	return w.emit2(file, item)
}

func (w *walker) noteFolder(f *folderRef) {
	if w.opts.IncludePermission && f.unique && !f.isRoot() {
		w.perms = append(w.perms, w.t.roleAssignment(f.list, f.scope, f.id, 2, webRel(f.list.web, f.url)))
	}
}

// noteList records the list's own role assignment, once per list.
func (w *walker) noteList(l *listNode) {
	if !w.opts.IncludePermission || w.listRA[l] {
		return
	}
	w.listRA[l] = true
	w.perms = append(w.perms, w.t.roleAssignment(l, l.scopeID, l.id, 1, l.webRel))
}

// permissions yields the DeploymentRoles and DeploymentRoleAssignments objects.
func (w *walker) permissions(first *location) error {
	l := first.list
	base := Object{ParentID: l.web.id, SiteID: l.site.id, WebID: l.web.id, WebURL: l.web.url}
	roles, ras := base, base
	roles.Type, roles.ID, roles.Roles = TypeRoles, guid(mix(mix(l.hash, saltRoles), uint64(w.snap))), w.t.Roles()
	ras.Type, ras.ID, ras.RoleAssignments = TypeRoleAssignments, guid(mix(mix(l.hash, saltRoles+1), uint64(w.snap))), w.perms
	return w.emit2(&roles, &ras)
}

// changedLeaf is a file or item named by the change log, deduplicated across its changes.
type changedLeaf struct {
	folderURL string
	index     int64
	added     *addedFile
}

// changes yields the objects below loc changed after change number from, each once, in the
// order of their latest change, in their state at the walk's snapshot.
func (w *walker) changes(loc *location, recs []changeRec, from int64) error {
	w.noteList(loc.list)
	t := w.t
	last := map[changedLeaf]int{}
	for i := range recs {
		if w.inScope(loc, &recs[i]) {
			last[changedLeaf{strings.ToLower(recs[i].folderURL), recs[i].index, recs[i].added}] = i
		}
	}
	folders := map[string]folderRef{}
	for i := range recs {
		r := &recs[i]
		key := changedLeaf{strings.ToLower(r.folderURL), r.index, r.added}
		if j, ok := last[key]; !ok || j != i {
			continue
		}
		f, ok := folders[key.folderURL]
		if !ok {
			fl, err := t.locate(r.folderURL, w.snap)
			if err != nil {
				return err
			}
			f = fl.folder
			folders[key.folderURL] = f
		}
		if err := w.leaf(&f, t.changedState(&f, r, w.snap)); err != nil {
			return err
		}
	}
	return nil
}

// inScope reports whether a change lies within a target (below it, or directly in it when shallow).
func (w *walker) inScope(loc *location, r *changeRec) bool {
	if r.list != loc.list {
		return false
	}
	if w.opts.IncludeDirectDescendantsOnly {
		return strings.EqualFold(r.folderURL, loc.folder.url)
	}
	return hasPathPrefix(r.folderURL, loc.folder.url)
}

// changedState is the state, at snap, of the file or item a change names.
func (t *Tenant) changedState(f *folderRef, r *changeRec, snap int64) *leafState {
	t.mu.RLock()
	var rev fileRev
	var ok bool
	if r.added != nil {
		rev, ok = latestRev(r.added.revs, snap)
	} else if s := t.ov.folders[strings.ToLower(f.url)]; s != nil {
		rev, ok = latestRev(s.files[r.index], snap)
	}
	t.mu.RUnlock()
	if r.added != nil {
		return t.addedLeaf(f, addedView{f: r.added, rev: rev})
	}
	var p *fileRev
	if ok {
		p = &rev
	}
	lf := t.baseLeaf(f, r.index, p)
	return &lf
}

// Count is the number of objects Walk would yield. Without a change token it is arithmetic:
// O(targets x depth), whatever the size of the trees.
func (t *Tenant) Count(ctx context.Context, targets []Target, opts ReadOptions) (int64, error) {
	if opts.StartChangeToken != "" {
		var n int64
		err := t.Walk(ctx, targets, opts, func(*Object) error { n++; return nil })
		return n, err
	}
	snap := t.currentChange()
	locs, err := t.targets(targets, snap)
	if err != nil {
		return 0, err
	}
	var n int64
	for i := range locs {
		f := &locs[i].folder
		per := int64(2) // objects per file: SPFile and its SPListItem
		if !f.list.library {
			per = 1
		}
		c := t.folderCounts(f, snap)
		if f.isRoot() {
			n++
		} else {
			n += 2
		}
		if opts.IncludeDirectDescendantsOnly {
			subfolders := int64(0)
			for _, ch := range f.spec.children {
				subfolders += ch.count
			}
			n += 2*subfolders + per*(c.direct-subfolders)
		} else {
			n += 2*c.folders + per*c.files
		}
	}
	if opts.IncludePermission && len(locs) > 0 {
		n += 2
	}
	return n, nil
}
