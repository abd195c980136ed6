package tenant

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A destination tenant is what a migration tool leaves behind: a copy of some site collections of
// a source tenant under new URLs, with the source's content (the same names, sizes, times,
// versions, authors, permissions and GUIDs, because every hash is taken from the source URL), user
// logins in another domain, and a known, seeded set of differences. It is an ordinary Tenant: the
// REST surface, the export and Mutate work on it unchanged.

// DefaultLoginDomain is the domain of users' logins and e-mail addresses in a tenant built by New.
const DefaultLoginDomain = "contoso.com"

// DefaultDestinationLoginDomain is the domain of a destination tenant's logins unless the spec names one.
const DefaultDestinationLoginDomain = "fabrikam.com"

// DifferenceKind is one kind of seeded difference.
type DifferenceKind string

// The kinds of seeded differences.
const (
	DiffMissing  DifferenceKind = "missing"  // the item is not at the destination
	DiffRenamed  DifferenceKind = "renamed"  // the file is at the destination under another name
	DiffSize     DifferenceKind = "size"     // the file's size differs
	DiffVersions DifferenceKind = "versions" // the destination has one version less
	DiffModified DifferenceKind = "modified" // the destination's modified time is two hours earlier
	DiffEditor   DifferenceKind = "editor"   // another user last modified it at the destination
	// DiffPermissions: the item had unique permissions at the source and inherits at the destination.
	DiffPermissions DifferenceKind = "permissions"
	// DiffPrincipal: the item kept unique permissions but one principal's assignment was dropped.
	DiffPrincipal DifferenceKind = "principal"
)

// DifferenceKinds are every kind, in the order NewDestination seeds them.
var DifferenceKinds = []DifferenceKind{DiffMissing, DiffRenamed, DiffSize, DiffVersions, DiffModified, DiffEditor, DiffPermissions, DiffPrincipal}

// Difference is one seeded difference: the ground truth a validation must find. URLs are
// server-relative; Source and Destination are the differing values as text (a size, a version
// count, an RFC 3339 time, a login, a principal), empty where the kind has none.
type Difference struct {
	Kind           DifferenceKind `json:"kind"`
	ObjectType     ObjectType     `json:"objectType"` // SPFile in a library, SPListItem in a list
	SourceURL      string         `json:"sourceUrl"`
	DestinationURL string         `json:"destinationUrl,omitempty"` // empty when missing
	Source         string         `json:"source,omitempty"`
	Destination    string         `json:"destination,omitempty"`
}

// DestinationSpec says how to derive a destination tenant from a source profile.
type DestinationSpec struct {
	// Sites maps source site collection URLs to destination URLs ("/sites/hr" → "/sites/hr-new");
	// only these sites are copied.
	Sites map[string]string
	// Seed chooses the items that differ.
	Seed int64
	// PerKind is how many differences of each kind are seeded; 0 means 2, negative none.
	PerKind int
	// LoginDomain replaces the source's login and e-mail domain (default DefaultDestinationLoginDomain).
	LoginDomain string
}

// destState is what makes a tenant a destination; immutable once NewDestination returns.
type destState struct {
	sites       []sitePair // longest destination URL first
	loginDomain string
	dropped     map[string]int // security scope id → principal whose assignment was dropped
	diffs       []Difference
	logins      map[string]string
}

type sitePair struct{ src, dst string }

// NewDestination builds the destination tenant of src under spec and seeds its differences; Seeded
// returns them and LoginMap the source-to-destination logins. The same profile and spec always
// give the same tenant and the same differences.
func NewDestination(src Profile, spec DestinationSpec) (*Tenant, error) {
	if len(spec.Sites) == 0 {
		return nil, errors.New("destination: no site mapping")
	}
	ds := &destState{loginDomain: spec.LoginDomain, dropped: map[string]int{}, logins: map[string]string{}}
	if ds.loginDomain == "" {
		ds.loginDomain = DefaultDestinationLoginDomain
	}
	dp := src
	dp.Sites = nil
	for _, s := range src.Sites {
		for from, to := range spec.Sites {
			if strings.EqualFold(from, s.URL) {
				if !strings.HasPrefix(to, "/") || strings.HasSuffix(to, "/") {
					return nil, fmt.Errorf("destination: site %s maps to %q: want a server-relative URL such as /sites/hr-new", from, to)
				}
				c := s
				c.URL = to
				dp.Sites = append(dp.Sites, c)
				ds.sites = append(ds.sites, sitePair{src: s.URL, dst: to})
			}
		}
	}
	for _, from := range slices.Sorted(maps.Keys(spec.Sites)) {
		if !slices.ContainsFunc(ds.sites, func(p sitePair) bool { return strings.EqualFold(p.src, from) }) {
			return nil, fmt.Errorf("destination: site %s is not in the source profile", from)
		}
	}
	for i, a := range ds.sites {
		for _, b := range ds.sites[i+1:] {
			if hasPathPrefix(a.dst, b.dst) || hasPathPrefix(b.dst, a.dst) {
				return nil, fmt.Errorf("destination: sites %s and %s overlap", a.dst, b.dst)
			}
		}
	}
	sort.Slice(ds.sites, func(i, j int) bool { return len(ds.sites[i].dst) > len(ds.sites[j].dst) })
	t, err := build(dp, ds)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	st, err := New(src)
	if err != nil {
		return nil, err
	}
	for _, s := range t.sites {
		ss := st.siteNodeAt(t.identity(s.url))
		for k := range s.spec.Users {
			ds.logins[st.user(ss, k).Login] = t.user(s, k).Login
		}
	}
	per := spec.PerKind
	if per == 0 {
		per = 2
	}
	if err := t.seedDifferences(st, spec.Seed, per); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tenant) siteNodeAt(url string) *siteNode {
	for _, s := range t.sites {
		if strings.EqualFold(s.url, url) {
			return s
		}
	}
	return nil
}

// identity is the URL an object's hashes derive from: its source URL in a destination tenant.
func (t *Tenant) identity(url string) string {
	if t.dest == nil {
		return url
	}
	return t.dest.toSource(url)
}

func (d *destState) toSource(url string) string {
	for _, p := range d.sites {
		if hasPathPrefix(url, p.dst) {
			return p.src + url[len(p.dst):]
		}
	}
	return url
}

func (t *Tenant) loginDomain() string {
	if t.dest != nil {
		return t.dest.loginDomain
	}
	return DefaultLoginDomain
}

// dropAssignment removes the assignment a destination lost from a scope's assignments.
func (t *Tenant) dropAssignment(scope string, as []Assignment) []Assignment {
	if t.dest == nil {
		return as
	}
	p, ok := t.dest.dropped[scope]
	if !ok {
		return as
	}
	return slices.DeleteFunc(as, func(a Assignment) bool { return a.PrincipalID == p })
}

// Seeded is the ground truth of a destination tenant: every seeded difference, in seeding order
// (nil for a tenant built by New).
func (t *Tenant) Seeded() []Difference {
	if t.dest == nil {
		return nil
	}
	return slices.Clone(t.dest.diffs)
}

// LoginMap maps every user login of the copied source sites to the destination's (nil for a tenant
// built by New). The System Account's login is the same in both.
func (t *Tenant) LoginMap() map[string]string {
	if t.dest == nil {
		return nil
	}
	return maps.Clone(t.dest.logins)
}

// SiteMap maps each copied source site URL to its destination URL (nil for a tenant built by New).
func (t *Tenant) SiteMap() map[string]string {
	if t.dest == nil {
		return nil
	}
	out := map[string]string{}
	for _, p := range t.dest.sites {
		out[p.src] = p.dst
	}
	return out
}

// saltDestination keeps the choice of differing items independent of everything else.
const saltDestination uint64 = 0xde57

type leafKey struct {
	list  int
	intID int64
}

// seedDifferences records per differences of each kind as revisions at the base change number, so they are
// part of the tenant's initial state: no change log entry, no change token sees them.
func (t *Tenant) seedDifferences(src *Tenant, seed int64, per int) error {
	used := map[leafKey]bool{}
	h0 := mix(uint64(seed), saltDestination)
	for ki, kind := range DifferenceKinds {
		var cands []*listNode
		for _, l := range t.mutable {
			if kind.fits(l) {
				cands = append(cands, l)
			}
		}
		for n := range max(per, 0) {
			ok := false
			for try := uint64(0); try < 512 && !ok && len(cands) > 0; try++ {
				h := mix(mix(h0, uint64(ki)+1), uint64(n)<<20|try)
				ok = t.seedOne(src, kind, cands[h%uint64(len(cands))], h, used)
			}
			if !ok {
				return fmt.Errorf("destination: no item of the copied sites can take a %q difference", kind)
			}
		}
	}
	return nil
}

// fits reports whether a list can hold a difference of kind k.
func (k DifferenceKind) fits(l *listNode) bool {
	switch k {
	case DiffRenamed, DiffSize:
		return l.library
	case DiffVersions:
		return l.maxVersions() > 1
	case DiffPermissions, DiffPrincipal:
		return l.spec.UniqueEvery > 0 && l.root.nodes() >= int64(l.spec.UniqueEvery)
	}
	return true
}

func (t *Tenant) seedOne(src *Tenant, kind DifferenceKind, l *listNode, h uint64, used map[leafKey]bool) bool {
	rank := 1 + int64(mix(h, 1)%uint64(l.root.nodes()))
	if kind == DiffPermissions || kind == DiffPrincipal {
		every := int64(l.spec.UniqueEvery)
		rank = every * (1 + int64(mix(h, 1)%uint64(l.root.nodes()/every)))
	}
	f, i, ok := t.locateRank(l, rank)
	if !ok || i < 0 {
		return false
	}
	lf := t.baseLeaf(&f, i, nil)
	key := leafKey{l.idx, lf.intID}
	if used[key] {
		return false
	}
	url := f.url + "/" + lf.name
	d := Difference{Kind: kind, ObjectType: TypeListItem, SourceURL: t.identity(url), DestinationURL: url}
	if l.library {
		d.ObjectType = TypeFile
	}
	rev := fileRev{num: firstChangeNumber, versions: lf.versions, size: lf.size, modified: lf.modified, modifiedBy: lf.modifiedBy}
	srcSite := src.siteNodeAt(t.identity(l.site.url))
	switch kind {
	case DiffMissing, DiffRenamed:
		rev.deleted = true
		d.DestinationURL = ""
		if kind == DiffRenamed {
			a := &addedFile{name: "Renamed " + lf.name, hash: lf.hash, intID: lf.intID, created: lf.created, author: lf.author, minor: lf.minor,
				revs: []fileRev{{num: firstChangeNumber, versions: lf.versions, size: lf.size, modified: lf.modified, modifiedBy: lf.modifiedBy}}}
			s := t.ov.state(f.url)
			s.added = append(s.added, a)
			d.DestinationURL = f.url + "/" + a.name
		} else {
			t.ov.addCounts(l, f.url, firstChangeNumber, -1, -lf.size)
		}
	case DiffSize:
		rev.size = lf.size + 1 + int64(mix(h, 2)%4096)
		t.ov.addCounts(l, f.url, firstChangeNumber, 0, rev.size-lf.size)
		d.Source, d.Destination = strconv.FormatInt(lf.size, 10), strconv.FormatInt(rev.size, 10)
	case DiffVersions:
		if lf.versions < 2 {
			return false
		}
		rev.versions--
		d.Source, d.Destination = strconv.Itoa(lf.versions), strconv.Itoa(rev.versions)
	case DiffModified:
		if lf.modified.Sub(lf.created) < 4*time.Hour {
			return false
		}
		rev.modified = lf.modified.Add(-2 * time.Hour)
		d.Source, d.Destination = lf.modified.Format(time.RFC3339), rev.modified.Format(time.RFC3339)
	case DiffEditor:
		if l.site.spec.Users < 2 {
			return false
		}
		first := l.site.firstUserID()
		rev.modifiedBy = first + (lf.modifiedBy-first+1+int(mix(h, 3)%uint64(l.site.spec.Users-1)))%l.site.spec.Users
		d.Source = src.user(srcSite, lf.modifiedBy-first).Login
		d.Destination = t.user(l.site, rev.modifiedBy-first).Login
	case DiffPermissions, DiffPrincipal:
		if !l.uniqueAt(lf.intID) {
			return false
		}
		if kind == DiffPermissions {
			if l.inherits == nil {
				l.inherits = map[int64]bool{}
			}
			l.inherits[lf.intID] = true
			d.Source, d.Destination = "unique", "inherited"
			break
		}
		scope := guid(mix(lf.hash, saltScope))
		as := t.assignments(l.site, hashString(l.site.hash, scope))
		p := as[len(as)-1].PrincipalID
		t.dest.dropped[scope] = p
		d.Source = src.principalName(srcSite, p)
	}
	if kind != DiffPermissions && kind != DiffPrincipal {
		s := t.ov.state(f.url)
		s.files[i] = []fileRev{rev}
	}
	used[key] = true
	t.dest.diffs = append(t.dest.diffs, d)
	return true
}

// principalName is a group's name or a user's login.
func (t *Tenant) principalName(s *siteNode, id int) string {
	if g := id - firstGroupID; g >= 0 && g < s.spec.Groups {
		return t.group(s, g).Name
	}
	if id == SystemAccountID {
		return t.systemAccount().Login
	}
	return t.user(s, id-s.firstUserID()).Login
}
