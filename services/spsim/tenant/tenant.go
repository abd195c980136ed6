package tenant

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Sentinel errors; every error the package returns for these cases wraps one of them.
var (
	ErrNotFound = errors.New("object not found")
	// ErrNotContainer: AMR reads only lists, libraries and folders, not files, items or webs.
	ErrNotContainer = errors.New("only folder, document library, or list are valid object types to run async read")
	// ErrChangeTokenExpired: the token is older than the change log (60 days), refers to changes
	// no longer retained, or is unknown. SharePoint reports it as -2146232832.
	ErrChangeTokenExpired = errors.New("the changeToken refers to a time before the start of the current change log")
	ErrBadChangeToken     = errors.New("malformed change token")
)

// ChangeLogRetention is how long changes stay in the change log.
const ChangeLogRetention = 60 * 24 * time.Hour

// Site is a site collection.
type Site struct{ ID, Title, ServerRelativeURL string }

// Web is a web (the root web of a site or a subweb).
type Web struct{ ID, Title, ServerRelativeURL, SiteID string }

// List is a list or library as the REST Lists call describes it; ItemCount counts every item
// (folders, files, list items) as SharePoint's List.ItemCount does.
type List struct {
	ID            string
	Title         string
	BaseTemplate  int
	ItemCount     int
	Hidden        bool
	RootFolderURL string
}

// Folder is a folder (or a list's root folder) with what SharePoint reports about it: ItemCount
// counts its direct children (files and folders), FolderChildCount its direct subfolders,
// SMTotalFileCount every file below it (StorageMetrics.TotalFileCount), SMTotalSize their bytes
// (StorageMetrics.TotalSize). SharePoint has no recursive folder count, so neither has the model.
// Modified is the folder's own last change, which the simulator reports as
// StorageMetrics.LastModified (SharePoint's is the content's; see services/spsim/README.md).
type Folder struct {
	ID                string
	Name              string
	ServerRelativeURL string
	ItemCount         int
	FolderChildCount  int
	SMTotalFileCount  int64
	SMTotalSize       int64
	Modified          time.Time
}

// TargetKind is what a URL resolved to; the values are SharePoint's SPDeploymentObjectType names,
// as ExportSettings.xml and RootObjectMap.xml write them.
type TargetKind string

// Target kinds.
const (
	TargetList   TargetKind = "List"
	TargetFolder TargetKind = "Folder"
	TargetFile   TargetKind = "File" // a file or a list item: not a valid AMR target
)

// Target is a resolved URL: a list (ServerRelativeURL is its root folder), a folder or a file.
type Target struct {
	Kind TargetKind
	// ID is the GUID of the list, folder or file; ParentID that of its parent: the web for a
	// list, the containing folder otherwise (the list's root folder at the top level).
	ID                string
	ParentID          string
	SiteID            string
	WebID             string
	WebURL            string
	ListID            string
	ServerRelativeURL string
}

// Tenant is a deterministic synthetic SharePoint tenant. Structure and content are computed on
// demand from the profile; only the clock and the changes made by Mutate are stored. It is safe for
// concurrent use.
type Tenant struct {
	seed     uint64
	epoch    time.Time
	oddEvery int
	sizes    sizeTable
	sites    []*siteNode
	webs     map[string]*webNode // by lower-case server-relative URL
	websDesc []*webNode          // longest URL first, for WebOf
	lists    []*listNode
	mutable  []*listNode // visible lists with content, where Mutate makes changes
	roles    []Role

	mu  sync.RWMutex
	now time.Time
	log changeLog
	ov  overlay

	// dest is set on a destination tenant (NewDestination) and nil otherwise.
	dest *destState
}

type siteNode struct {
	id, url, title string
	hash           uint64
	spec           SiteSpec
	rootWeb        *webNode
	webs           []*webNode
}

type webNode struct {
	id, url, title string
	hash           uint64
	site           *siteNode
	parent         *webNode
	subwebs        []*webNode
	lists          []*listNode
}

type listNode struct {
	idx      int
	site     *siteNode
	web      *webNode
	spec     ListSpec
	library  bool
	hash     uint64
	id       string
	rootID   string
	scopeID  string
	url      string // server-relative root folder URL
	webRel   string
	rootName string
	root     *specNode
	// ctFolder, ctDoc and ctItem are the list's content type ids for folders, documents and items.
	ctFolder, ctDoc, ctItem string
	// inherits holds the list item ids whose unique permissions a destination tenant lost
	// (destination.go); set before the tenant is used, read-only afterwards.
	inherits map[int64]bool
}

// specNode is a compiled FolderSpec: one node per spec entry, whatever its Repeat, with the
// per-instance totals that make every count arithmetic.
type specNode struct {
	name     string
	repeated bool
	count    int64 // instances (Repeat, or 1)
	files    int64
	children []*specNode
	// childOffset[i] is the rank offset of children[i]'s first instance, relative to the parent.
	childOffset []int64
	subFiles    int64 // files below one instance, recursively
	subFolders  int64 // folders below one instance, recursively
	salt        uint64
	sizes       *sizeTable // nil in generic lists: items have no size
	childSize   int64      // bytes below one instance's subfolders
	allSize     int64      // bytes of every instance, subfolders included
}

func (s *specNode) nodes() int64 { return s.subFiles + s.subFolders }

// instanceSize is the bytes below the r-th instance.
func (s *specNode) instanceSize(r int64) int64 {
	if s.sizes == nil {
		return 0
	}
	return s.sizes.total(s.files, s.salt+uint64(r)) + s.childSize
}

// instanceName is the r-th instance's folder name.
func (s *specNode) instanceName(r int64) string {
	if s.repeated {
		return repeatName(s.name, r)
	}
	return s.name
}

func compileSpec(f FolderSpec, extraFiles int, salt uint64, sizes *sizeTable) *specNode {
	s := &specNode{
		name: f.Name, repeated: f.Repeat > 0, count: max(int64(f.Repeat), 1),
		files: int64(f.Files + extraFiles), salt: salt, sizes: sizes,
	}
	s.subFiles = s.files
	off := s.files
	for i, c := range f.Folders {
		cs := compileSpec(c, 0, mix(salt, uint64(i)+1), sizes)
		s.children = append(s.children, cs)
		s.childOffset = append(s.childOffset, off)
		off += cs.count * (1 + cs.nodes())
		s.subFiles += cs.count * cs.subFiles
		s.subFolders += cs.count * (1 + cs.subFolders)
		s.childSize += cs.allSize
	}
	for r := int64(0); r < s.count; r++ {
		s.allSize += s.instanceSize(r)
	}
	return s
}

// New builds a tenant from a profile. It does no work proportional to the number of items.
func New(p Profile) (*Tenant, error) { return build(p, nil) }

// build builds a tenant; dest, when not nil, makes it a destination tenant (destination.go).
func build(p Profile, dest *destState) (*Tenant, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	t := &Tenant{
		seed:     mix(uint64(p.Seed), 0x5e5e),
		epoch:    p.Epoch.UTC().Truncate(time.Second),
		oddEvery: p.OddNameEvery,
		webs:     map[string]*webNode{},
		dest:     dest,
	}
	if p.Epoch.IsZero() {
		t.epoch = DefaultEpoch
	}
	if t.oddEvery == 0 {
		t.oddEvery = 2000
	}
	t.sizes = newSizeTable(t.seed)
	t.now = t.epoch
	t.log.init()
	t.ov.init()
	for _, ss := range p.Sites {
		t.addSite(ss)
	}
	for _, w := range t.webs {
		t.websDesc = append(t.websDesc, w)
	}
	sort.Slice(t.websDesc, func(i, j int) bool {
		if len(t.websDesc[i].url) != len(t.websDesc[j].url) {
			return len(t.websDesc[i].url) > len(t.websDesc[j].url)
		}
		return t.websDesc[i].url < t.websDesc[j].url
	})
	t.roles = standardRoles()
	return t, nil
}

func (t *Tenant) addSite(ss SiteSpec) {
	s := &siteNode{url: ss.URL, title: ss.Title, spec: ss, hash: hashString(mix(t.seed, saltSite), t.identity(ss.URL))}
	s.id = guid(s.hash)
	t.sites = append(t.sites, s)
	// Webs are created parents first (shorter paths first) so each finds its parent.
	specs := append([]WebSpec(nil), ss.Webs...)
	sort.SliceStable(specs, func(i, j int) bool { return len(specs[i].Path) < len(specs[j].Path) })
	for _, ws := range specs {
		url := ss.URL
		if ws.Path != "" {
			url += "/" + ws.Path
		}
		w := &webNode{url: url, title: ws.Title, site: s, hash: hashString(mix(t.seed, saltWeb), t.identity(url))}
		w.id = guid(w.hash)
		if ws.Path == "" {
			s.rootWeb = w
		} else {
			w.parent = t.longestWeb(url[:strings.LastIndexByte(url, '/')])
			w.parent.subwebs = append(w.parent.subwebs, w)
		}
		s.webs = append(s.webs, w)
		t.webs[strings.ToLower(url)] = w
		for _, ls := range ws.Lists {
			t.addList(w, ls)
		}
	}
}

// longestWeb is the web whose URL is the longest prefix of url, among webs created so far.
func (t *Tenant) longestWeb(url string) *webNode {
	for u := strings.ToLower(url); ; {
		if w, ok := t.webs[u]; ok {
			return w
		}
		i := strings.LastIndexByte(u, '/')
		if i <= 0 {
			return nil
		}
		u = u[:i]
	}
}

func (t *Tenant) addList(w *webNode, ls ListSpec) {
	l := &listNode{
		idx: len(t.lists), site: w.site, web: w, spec: ls,
		library: ls.Template == TemplateDocumentLibrary, webRel: ls.webRelURL(),
	}
	l.url = w.url + "/" + l.webRel
	l.rootName = l.webRel[strings.LastIndexByte(l.webRel, '/')+1:]
	l.hash = hashString(mix(t.seed, saltList), t.identity(l.url))
	l.id = guid(l.hash)
	l.rootID = guid(mix(l.hash, saltRootFolder))
	l.scopeID = guid(mix(l.hash, saltScope))
	ct := hex32(mix(l.hash, saltContentType))
	l.ctFolder, l.ctDoc, l.ctItem = "0x012000"+ct, "0x010100"+ct, "0x0100"+ct
	extra := 0
	if !l.library {
		extra = ls.Items
	}
	var sizes *sizeTable
	if l.library {
		sizes = &t.sizes
	}
	l.root = compileSpec(ls.Root, extra, mix(l.hash, saltSize), sizes)
	t.lists = append(t.lists, l)
	w.lists = append(w.lists, l)
	if !ls.Hidden && l.root.nodes() > 0 {
		t.mutable = append(t.mutable, l)
	}
}

// Now is the simulated clock.
func (t *Tenant) Now() time.Time {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.now
}

// Advance moves the simulated clock forward (a negative d is ignored) and drops changes that fall
// out of the change log.
func (t *Tenant) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.now = t.now.Add(d)
	t.log.prune(t.now.Add(-ChangeLogRetention))
}

// Sites lists the site collections in profile order.
func (t *Tenant) Sites() []Site {
	out := make([]Site, 0, len(t.sites))
	for _, s := range t.sites {
		out = append(out, s.public())
	}
	return out
}

func (s *siteNode) public() Site { return Site{ID: s.id, Title: s.title, ServerRelativeURL: s.url} }

func (w *webNode) public() Web {
	return Web{ID: w.id, Title: w.title, ServerRelativeURL: w.url, SiteID: w.site.id}
}

// SiteOf is the site collection that contains a URL.
func (t *Tenant) SiteOf(serverRelURL string) (Site, error) {
	w, err := t.WebOf(serverRelURL)
	if err != nil {
		return Site{}, err
	}
	for _, s := range t.sites {
		if s.id == w.SiteID {
			return s.public(), nil
		}
	}
	return Site{}, fmt.Errorf("site of %q: %w", serverRelURL, ErrNotFound)
}

// Web is the web at exactly this URL.
func (t *Tenant) Web(serverRelURL string) (Web, error) {
	for _, u := range candidateURLs(serverRelURL) {
		if w, ok := t.webs[strings.ToLower(u)]; ok {
			return w.public(), nil
		}
	}
	return Web{}, fmt.Errorf("web %q: %w", serverRelURL, ErrNotFound)
}

// WebOf is the web that contains the URL (the longest web URL that is a prefix of it).
func (t *Tenant) WebOf(serverRelURL string) (Web, error) {
	for _, u := range candidateURLs(serverRelURL) {
		if w := t.webOf(u); w != nil {
			return w.public(), nil
		}
	}
	return Web{}, fmt.Errorf("web of %q: %w", serverRelURL, ErrNotFound)
}

func (t *Tenant) webOf(url string) *webNode {
	for _, w := range t.websDesc {
		if hasPathPrefix(url, w.url) {
			return w
		}
	}
	return nil
}

// Subwebs lists the direct subwebs of a web.
func (t *Tenant) Subwebs(webURL string) ([]Web, error) {
	w, err := t.exactWeb(webURL)
	if err != nil {
		return nil, err
	}
	out := make([]Web, 0, len(w.subwebs))
	for _, s := range w.subwebs {
		out = append(out, s.public())
	}
	return out, nil
}

func (t *Tenant) exactWeb(webURL string) (*webNode, error) {
	for _, u := range candidateURLs(webURL) {
		if w, ok := t.webs[strings.ToLower(u)]; ok {
			return w, nil
		}
	}
	return nil, fmt.Errorf("web %q: %w", webURL, ErrNotFound)
}

// Lists lists the lists and libraries of a web, hidden ones included (flagged Hidden).
func (t *Tenant) Lists(webURL string) ([]List, error) {
	w, err := t.exactWeb(webURL)
	if err != nil {
		return nil, err
	}
	t.mu.RLock()
	snap := t.log.last
	t.mu.RUnlock()
	out := make([]List, 0, len(w.lists))
	for _, l := range w.lists {
		d := t.ov.countsAt(t, l.url, snap)
		out = append(out, List{
			ID: l.id, Title: l.spec.Title, BaseTemplate: l.spec.Template,
			ItemCount: int(l.root.nodes() + d.files), Hidden: l.spec.Hidden, RootFolderURL: l.url,
		})
	}
	return out, nil
}

// candidateURLs normalises a URL the ways a client may send it: absolute or server-relative,
// percent-encoded or decoded, with or without a trailing slash. The literal form comes first
// because names may contain '%'.
func candidateURLs(raw string) []string {
	u := raw
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			u = rest[j:]
		} else {
			u = "/"
		}
	}
	if !strings.HasPrefix(u, "/") {
		u = "/" + u
	}
	for len(u) > 1 && strings.HasSuffix(u, "/") {
		u = u[:len(u)-1]
	}
	out := []string{u}
	if strings.Contains(u, "%") {
		if d, err := pathUnescape(u); err == nil && d != u {
			out = append(out, d)
		}
	}
	return out
}

// hasPathPrefix reports whether url is prefix or below it, case-insensitively, at a segment boundary.
func hasPathPrefix(url, prefix string) bool {
	if len(url) < len(prefix) || !strings.EqualFold(url[:len(prefix)], prefix) {
		return false
	}
	return len(url) == len(prefix) || url[len(prefix)] == '/' || prefix == "/"
}
