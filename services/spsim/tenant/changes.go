package tenant

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ChangeKind is what a change did.
type ChangeKind int

// Change kinds.
const (
	ChangeAdd    ChangeKind = iota + 1 // a file or list item was added
	ChangeUpdate                       // a new version of a file or an edit of a list item
	ChangeDelete                       // a file or list item was deleted
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeAdd:
		return "add"
	case ChangeUpdate:
		return "update"
	case ChangeDelete:
		return "delete"
	}
	return "ChangeKind(" + strconv.Itoa(int(k)) + ")"
}

// Change is one entry of the change log.
type Change struct {
	Number     int64
	Time       time.Time
	Kind       ChangeKind
	SiteID     string
	WebID      string
	ListID     string
	ObjectType ObjectType // TypeFile in a library, TypeListItem in a list
	ObjectID   string     // the SPFile id, or the list item id
	// ItemID is, for a file, the id of its list item (the SPListItem whose DocId is ObjectID);
	// empty for a list item.
	ItemID            string
	ServerRelativeURL string
}

// The overlay holds every change ever made as revisions tagged with their change number, so a walk
// reads a consistent snapshot (everything up to the change number current when it started) while
// Mutate keeps appending. It grows only with the number of changes.
type overlay struct {
	folders map[string]*folderState // by lower-case folder URL
	added   map[int]int64           // list index -> items added so far
}

type folderState struct {
	files  map[int64][]fileRev // base file index -> revisions, oldest first
	added  []*addedFile
	counts []countRev // cumulative deltas of this folder's subtree, oldest first
}

// fileRev is the state of a file (or list item) after one change.
type fileRev struct {
	num        int64
	deleted    bool
	versions   int // versions so far, current included
	size       int64
	modified   time.Time
	modifiedBy int
}

// addedFile is a file or item created by Mutate. Every field but revs is immutable once published.
type addedFile struct {
	name    string
	hash    uint64
	intID   int64
	created time.Time
	author  int
	minor   bool
	revs    []fileRev // revs[0] is the addition
}

// countRev is the cumulative change of a subtree's counts up to change num.
type countRev struct {
	num    int64
	files  int64 // files (items) below, recursively
	size   int64 // bytes below
	direct int64 // direct children
}

func (o *overlay) init() {
	o.folders = map[string]*folderState{}
	o.added = map[int]int64{}
}

func (o *overlay) state(folderURL string) *folderState {
	k := strings.ToLower(folderURL)
	s := o.folders[k]
	if s == nil {
		s = &folderState{files: map[int64][]fileRev{}}
		o.folders[k] = s
	}
	return s
}

// latestRev is the last revision at or before snap.
func latestRev(revs []fileRev, snap int64) (fileRev, bool) {
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i].num <= snap {
			return revs[i], true
		}
	}
	return fileRev{}, false
}

// folderView is a folder's overlay as of a change number, copied so it can be read without a lock.
type folderView struct {
	mods  map[int64]fileRev
	added []addedView
}

type addedView struct {
	f   *addedFile
	rev fileRev
}

func (v folderView) rev(i int64) *fileRev {
	if r, ok := v.mods[i]; ok {
		return &r
	}
	return nil
}

// folderView copies the overlay of one folder as of snap.
func (t *Tenant) folderView(folderURL string, snap int64) folderView {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.ov.folders[strings.ToLower(folderURL)]
	if s == nil {
		return folderView{}
	}
	var v folderView
	for i, revs := range s.files {
		if r, ok := latestRev(revs, snap); ok {
			if v.mods == nil {
				v.mods = make(map[int64]fileRev, len(s.files))
			}
			v.mods[i] = r
		}
	}
	for _, a := range s.added {
		if r, ok := latestRev(a.revs, snap); ok {
			v.added = append(v.added, addedView{f: a, rev: r})
		}
	}
	return v
}

// countsAt is the cumulative count change of a folder's subtree as of snap.
func (o *overlay) countsAt(t *Tenant, folderURL string, snap int64) countRev {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := o.folders[strings.ToLower(folderURL)]
	if s == nil {
		return countRev{}
	}
	i := sort.Search(len(s.counts), func(i int) bool { return s.counts[i].num > snap })
	if i == 0 {
		return countRev{}
	}
	return s.counts[i-1]
}

// addCounts records a change of a file count at folderURL in it and every ancestor up to the
// list's root folder.
func (o *overlay) addCounts(l *listNode, folderURL string, num, files, size int64) {
	direct := files
	for u := folderURL; ; {
		s := o.state(u)
		var c countRev
		if n := len(s.counts); n > 0 {
			c = s.counts[n-1]
		}
		c.num, c.files, c.size, c.direct = num, c.files+files, c.size+size, c.direct+direct
		s.counts = append(s.counts, c)
		if len(u) <= len(l.url) {
			return
		}
		u, direct = u[:strings.LastIndexByte(u, '/')], 0
	}
}

// changeLog is the retained change history. Change numbers are global to the tenant.
type changeLog struct {
	base          int64 // the number of the state before any change
	last          int64 // the newest change's number
	prunedThrough int64 // changes up to this number are no longer retained
	recs          []changeRec
}

type changeRec struct {
	Change
	list      *listNode
	folderURL string
	index     int64 // base leaf index, or -1 for an added file
	added     *addedFile
}

const firstChangeNumber = 1000

func (c *changeLog) init() {
	c.base, c.last, c.prunedThrough = firstChangeNumber, firstChangeNumber, firstChangeNumber
}

// prune drops changes made before cutoff.
func (c *changeLog) prune(cutoff time.Time) {
	i := sort.Search(len(c.recs), func(i int) bool { return !c.recs[i].Time.Before(cutoff) })
	if i == 0 {
		return
	}
	c.prunedThrough = c.recs[i-1].Number
	clear(c.recs[:i]) // release what the pruned records point to
	// Re-slicing is O(1); the next append that outgrows the array copies only live records.
	c.recs = c.recs[i:]
}

// CurrentChangeToken is the change token of a target's list now, in SharePoint's
// "1;3;<listGuid>;<ticks>;<changeNumber>" form.
func (t *Tenant) CurrentChangeToken(target Target) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	listID := target.ListID
	if listID == "" {
		listID = "00000000-0000-0000-0000-000000000000"
	}
	return "1;3;" + listID + ";" + strconv.FormatInt(dotnetTicks(t.now), 10) + ";" + strconv.FormatInt(t.log.last, 10)
}

func parseChangeToken(tok string) (ticks, num int64, err error) {
	p := strings.Split(tok, ";")
	if len(p) != 5 || p[0] != "1" || p[1] != "3" || !isGUID(p[2]) {
		return 0, 0, fmt.Errorf("change token %q: %w", tok, ErrBadChangeToken)
	}
	ticks, err1 := strconv.ParseInt(p[3], 10, 64)
	num, err2 := strconv.ParseInt(p[4], 10, 64)
	if err1 != nil || err2 != nil || ticks <= 0 || num < 0 {
		return 0, 0, fmt.Errorf("change token %q: %w", tok, ErrBadChangeToken)
	}
	return ticks, num, nil
}

// snapshot is the current change number and, for an incremental read, the validated token's
// change number and a copy of the retained changes after it.
func (t *Tenant) snapshot(token string) (snap, from int64, recs []changeRec, err error) {
	var ticks int64
	if token != "" {
		if ticks, from, err = parseChangeToken(token); err != nil {
			return 0, 0, nil, err
		}
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	snap = t.log.last
	if token == "" {
		return snap, 0, nil, nil
	}
	at := fromDotnetTicks(ticks)
	if at.Before(t.now.Add(-ChangeLogRetention)) || at.After(t.now) || from < t.log.prunedThrough || from > snap {
		return 0, 0, nil, fmt.Errorf("change token %q: %w", token, ErrChangeTokenExpired)
	}
	i := sort.Search(len(t.log.recs), func(i int) bool { return t.log.recs[i].Number > from })
	return snap, from, append([]changeRec(nil), t.log.recs[i:]...), nil
}

// Mutate makes n deterministic changes, one simulated second apart from Now(): new versions of
// files, edits of list items, additions and deletions. The same profile and the same sequence of
// Mutate and Advance calls always give the same changes.
func (t *Tenant) Mutate(n int) []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Change, 0, max(n, 0))
	if len(t.mutable) == 0 {
		return out
	}
	for range n {
		num := t.log.last + 1
		t.now = t.now.Add(time.Second)
		h := mix(mix(t.seed, saltMutate), uint64(num))
		l := t.mutable[h%uint64(len(t.mutable))]
		var rec changeRec
		var ok bool
		switch k := mix(h, 1) % 100; {
		case k < 55:
			rec, ok = t.mutateLeaf(l, h, num, ChangeUpdate)
		case k < 80:
			rec, ok = t.addLeaf(l, h, num)
		default:
			rec, ok = t.mutateLeaf(l, h, num, ChangeDelete)
		}
		if !ok {
			rec, ok = t.addLeaf(l, h, num)
		}
		if !ok {
			continue
		}
		t.log.last = num
		t.log.recs = append(t.log.recs, rec)
		out = append(out, rec.Change)
	}
	t.log.prune(t.now.Add(-ChangeLogRetention))
	return out
}

// pickLeaf chooses a live base file (or item) of l from h; a few tries skip folders and
// deleted files.
func (t *Tenant) pickLeaf(l *listNode, h uint64) (folderRef, int64, bool) {
	for try := uint64(0); try < 16; try++ {
		f, i, ok := t.locateRank(l, 1+int64(mix(h, 100+try)%uint64(l.root.nodes())))
		if !ok || i < 0 {
			continue
		}
		if s := t.ov.folders[strings.ToLower(f.url)]; s != nil {
			if revs := s.files[i]; len(revs) > 0 && revs[len(revs)-1].deleted {
				continue
			}
		}
		return f, i, true
	}
	return folderRef{}, 0, false
}

// mutateLeaf records a new version of, or deletes, a base file or item. Called with t.mu held.
func (t *Tenant) mutateLeaf(l *listNode, h uint64, num int64, kind ChangeKind) (changeRec, bool) {
	f, i, ok := t.pickLeaf(l, h)
	if !ok {
		return changeRec{}, false
	}
	s := t.ov.state(f.url)
	var cur *fileRev
	if revs := s.files[i]; len(revs) > 0 {
		cur = &revs[len(revs)-1]
	}
	lf := t.baseLeaf(&f, i, cur)
	rev := t.nextRev(&lf, h, num, kind)
	s.files[i] = append(s.files[i], rev)
	if kind == ChangeDelete {
		t.ov.addCounts(l, f.url, num, -1, -lf.size)
	} else if rev.size != lf.size {
		t.ov.addCounts(l, f.url, num, 0, rev.size-lf.size)
	}
	return t.changeRec(&f, &lf, num, kind, i, nil), true
}

// nextRev is the revision an update or delete makes of lf.
func (t *Tenant) nextRev(lf *leafState, h uint64, num int64, kind ChangeKind) fileRev {
	rev := fileRev{num: num, versions: lf.versions, size: lf.size, modified: t.now, modifiedBy: lf.modifiedBy}
	if kind == ChangeDelete {
		rev.deleted = true
		return rev
	}
	rev.versions++
	rev.modifiedBy = t.userAt(lf.site, mix(h, 2))
	if lf.library {
		rev.size = max(1, lf.size+int64(mix(h, 3)%8192)-2048)
	}
	return rev
}

// addLeaf adds a file (or item) to a folder of l chosen from h. Called with t.mu held.
func (t *Tenant) addLeaf(l *listNode, h uint64, num int64) (changeRec, bool) {
	f, _, ok := t.locateRank(l, 1+int64(mix(h, 5)%uint64(l.root.nodes())))
	if !ok {
		return changeRec{}, false
	}
	t.ov.added[l.idx]++
	a := &addedFile{
		hash:    mix(mix(f.hash, saltAdded), uint64(num)),
		intID:   l.root.nodes() + t.ov.added[l.idx],
		created: t.now,
		author:  t.userAt(l.site, mix(h, 6)),
		minor:   l.minorAt(mix(h, 7)),
	}
	if l.library {
		a.name = "Upload_" + strconv.FormatInt(num, 10) + "." + fileExts[mix(h, 8)%uint64(len(fileExts))]
	} else {
		a.name = itemName(a.intID)
	}
	size := int64(0)
	if l.library {
		size = t.sizes.at(int64(num), a.hash)
	}
	a.revs = []fileRev{{num: num, versions: 1, size: size, modified: t.now, modifiedBy: a.author}}
	s := t.ov.state(f.url)
	s.added = append(s.added, a)
	t.ov.addCounts(l, f.url, num, 1, size)
	lf := t.addedLeaf(&f, addedView{f: a, rev: a.revs[0]})
	return t.changeRec(&f, lf, num, ChangeAdd, -1, a), true
}

func (t *Tenant) changeRec(f *folderRef, lf *leafState, num int64, kind ChangeKind, index int64, a *addedFile) changeRec {
	l := f.list
	typ, item := TypeListItem, ""
	if l.library {
		typ, item = TypeFile, guid(mix(lf.hash, saltItem)) // as objects.go names a file's list item
	}
	return changeRec{
		Change: Change{
			Number: num, Time: t.now, Kind: kind, SiteID: l.site.id, WebID: l.web.id, ListID: l.id,
			ObjectType: typ, ObjectID: lf.id(), ItemID: item, ServerRelativeURL: f.url + "/" + lf.name,
		},
		list: l, folderURL: f.url, index: index, added: a,
	}
}
