// Package validate is post-migration validation: it compares the items of a source tenant with those
// of a destination tenant through a path mapping and reports, per item, the checks that failed
// (presence, size, modified time, version count, author and editor through a login mapping,
// unique-permission scopes) and, per list, a summary. Items come through a Source: a migration
// engine's CSV report (CSVSource), the pipeline's records (RecordsSource), or any adapter that
// implements the interface (an inventory). A source that cannot be read in full fails the
// validation: there are no partial results. docs/validation.md describes the checks and the reports.
package validate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kind is what an item is.
type Kind string

// Item kinds.
const (
	KindFile     Kind = "File"     // a file of a document library
	KindFolder   Kind = "Folder"   // a folder of a library or list
	KindListItem Kind = "ListItem" // an item of a generic list
)

// Permissions says whether an item has unique permissions.
type Permissions int

// Permission states.
const (
	PermissionsUnknown   Permissions = iota // the source does not say: the check is skipped
	PermissionsInherited                    // the item inherits its parent's permissions
	PermissionsUnique                       // the item has unique permissions (Principals)
)

func (p Permissions) String() string {
	switch p {
	case PermissionsInherited:
		return "inherited"
	case PermissionsUnique:
		return "unique"
	}
	return ""
}

// Item is one file, folder or list item as a Source yields it. A value a source does not know is
// left at its "unknown" value (Size -1, Versions 0, zero Modified, empty logins, PermissionsUnknown)
// and the check that needs it is skipped for that item.
type Item struct {
	// List is the server-relative URL of the item's list or library (its root folder), e.g.
	// "/sites/hr/Shared Documents".
	List string
	// URL is the item's server-relative URL, e.g. "/sites/hr/Shared Documents/a/b.docx".
	URL      string
	Kind     Kind
	Size     int64 // bytes of a file; -1 unknown (folders and list items)
	Modified time.Time
	// Versions counts the versions, current included; 0 unknown.
	Versions int
	// Author and Editor are logins (claims logins as SharePoint writes them).
	Author, Editor string
	Permissions    Permissions
	// Principals are the role assignments of an item with unique permissions, each
	// "principal=role" (a user's login or a group's name, and a role name), in any order.
	Principals []string
}

// Source yields the items of one tenant (one pass of it). Items calls fn once per item; an error
// from fn ends the iteration and is returned. A source that cannot be read completely (a bad row, an
// unknown pass, items of more than one tenant) returns an error, never a partial iteration that
// looks complete.
type Source interface {
	// Name says what the source is in errors and reports ("source.csv", "records of 12 jobs").
	Name() string
	Items(ctx context.Context, fn func(*Item) error) error
}

// Mapping maps a source site or library URL prefix to its destination prefix.
type Mapping struct{ From, To string }

func (m Mapping) String() string { return m.From + "=" + m.To }

// ParseMapping reads "SRC=DST" (server-relative URL prefixes).
func ParseMapping(s string) (Mapping, error) {
	from, to, ok := strings.Cut(s, "=")
	m := Mapping{From: strings.TrimRight(strings.TrimSpace(from), "/"), To: strings.TrimRight(strings.TrimSpace(to), "/")}
	if !ok || !strings.HasPrefix(m.From, "/") || !strings.HasPrefix(m.To, "/") {
		return Mapping{}, fmt.Errorf("mapping %q: want SRC=DST with server-relative URLs, e.g. /sites/hr=/sites/hr-new", s)
	}
	return m, nil
}

// Check names one check.
type Check string

// The checks, in report order.
const (
	CheckMissing     Check = "missing"     // at the source, not at the destination
	CheckExtra       Check = "extra"       // at the destination, not at the source
	CheckSize        Check = "size"        // file size differs
	CheckModified    Check = "modified"    // modified time differs by more than the tolerance
	CheckVersions    Check = "versions"    // version count differs
	CheckAuthor      Check = "author"      // author differs after the login mapping
	CheckEditor      Check = "editor"      // last editor differs after the login mapping
	CheckPermissions Check = "permissions" // unique permissions lost, or other principals
)

// Checks are every check, in report order.
var Checks = []Check{CheckMissing, CheckExtra, CheckSize, CheckModified, CheckVersions, CheckAuthor, CheckEditor, CheckPermissions}

// Options configure a validation.
type Options struct {
	// Mappings map source prefixes to destination prefixes; source items under none are out of
	// scope, as are destination items under no To. At least one is needed.
	Mappings []Mapping
	// Logins maps source principals (user logins, group names) to destination ones; a principal
	// not in the map is expected unchanged. Matching ignores case.
	Logins map[string]string
	// MtimeTolerance is the largest modified-time difference that passes.
	MtimeTolerance time.Duration
}

// Failure is one failed check of an item, with the values compared (as text).
type Failure struct {
	Check               Check
	Source, Destination string
}

// ItemResult is the result of one item: the source item and the destination item it was compared
// with (either absent for missing and extra items) and the failed checks.
type ItemResult struct {
	// List is the source list's URL (for an extra item, the destination list's URL mapped back).
	List                      string
	Kind                      Kind
	SourceURL, DestinationURL string
	Size                      int64 // the source's (the destination's for an extra item); -1 unknown
	Failures                  []Failure
}

// Passed reports whether every check passed.
func (r *ItemResult) Passed() bool { return len(r.Failures) == 0 }

// ListSummary sums a list's results.
type ListSummary struct {
	List, DestinationList string
	// Items counts the source items and the extra destination items; Passed and Failed split them.
	Items, Passed, Failed int
	// Bytes sums the sizes of the source's files.
	Bytes   int64
	ByCheck map[Check]int
}

// Result is a complete validation.
type Result struct {
	Source, Destination string
	Options             Options
	// Items are every compared item, by list, then source URL (destination URL for extras).
	Items []ItemResult
	// Lists are the per-list summaries, by list URL.
	Lists []ListSummary
	// Total sums every list.
	Total ListSummary
}

// Failed reports whether any check failed.
func (r *Result) Failed() bool { return r.Total.Failed > 0 }

// ErrMapsNothing is wrapped by the error of a mapping that matches no source or no destination item.
var ErrMapsNothing = errors.New("maps nothing")

// Validate compares src with dst. Any error reading either source, and any mapping that maps
// nothing, fails it: a Result is always complete.
func Validate(ctx context.Context, src, dst Source, opts Options) (*Result, error) {
	if len(opts.Mappings) == 0 {
		return nil, errors.New("validate: no path mapping (SRC=DST)")
	}
	for i, m := range opts.Mappings {
		for _, o := range opts.Mappings[:i] {
			if strings.EqualFold(o.From, m.From) {
				return nil, fmt.Errorf("validate: source prefix %s mapped twice (%s and %s)", m.From, o, m)
			}
		}
	}
	v := &validator{opts: opts, logins: map[string]string{}, srcHits: make([]int, len(opts.Mappings)),
		dstHits: make([]int, len(opts.Mappings)), byKey: map[string]*Item{}}
	for k, val := range opts.Logins {
		v.logins[strings.ToLower(k)] = val
	}
	err := src.Items(ctx, func(it *Item) error {
		to, i, ok := v.mapURL(it.URL, true)
		if !ok {
			return nil
		}
		v.srcHits[i]++
		key := strings.ToLower(to)
		if _, dup := v.byKey[key]; dup {
			return fmt.Errorf("item %s twice", it.URL)
		}
		c := *it
		v.byKey[key] = &c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("validate: read %s: %w", src.Name(), err)
	}
	res := &Result{Source: src.Name(), Destination: dst.Name(), Options: opts}
	seen := map[string]bool{}
	err = dst.Items(ctx, func(it *Item) error {
		_, i, ok := v.mapURL(it.URL, false)
		if !ok {
			return nil
		}
		v.dstHits[i]++
		key := strings.ToLower(it.URL)
		if seen[key] {
			return fmt.Errorf("item %s twice", it.URL)
		}
		seen[key] = true
		s := v.byKey[key]
		if s == nil {
			list, _, ok := v.mapURL(it.List, false)
			if !ok {
				list = it.List
			}
			res.Items = append(res.Items, ItemResult{List: list, Kind: it.Kind, DestinationURL: it.URL, Size: it.Size,
				Failures: []Failure{{Check: CheckExtra, Destination: it.URL}}})
			return nil
		}
		res.Items = append(res.Items, ItemResult{List: s.List, Kind: s.Kind, SourceURL: s.URL, DestinationURL: it.URL, Size: s.Size,
			Failures: v.compare(s, it)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("validate: read %s: %w", dst.Name(), err)
	}
	for i, m := range opts.Mappings {
		switch {
		case v.srcHits[i] == 0:
			return nil, fmt.Errorf("validate: mapping %s %w: no item of %s is under %s", m, ErrMapsNothing, src.Name(), m.From)
		case v.dstHits[i] == 0:
			return nil, fmt.Errorf("validate: mapping %s %w: no item of %s is under %s", m, ErrMapsNothing, dst.Name(), m.To)
		}
	}
	for key, s := range v.byKey {
		if !seen[key] {
			to, _, _ := v.mapURL(s.URL, true)
			res.Items = append(res.Items, ItemResult{List: s.List, Kind: s.Kind, SourceURL: s.URL, Size: s.Size,
				Failures: []Failure{{Check: CheckMissing, Source: s.URL, Destination: to}}})
		}
	}
	res.summarise(v)
	return res, nil
}

type validator struct {
	opts             Options
	logins           map[string]string
	srcHits, dstHits []int
	byKey            map[string]*Item // source items by lower-case mapped URL
}

// mapURL maps a source URL forward (or a destination URL back) through the longest matching
// prefix, and says which mapping did.
func (v *validator) mapURL(url string, forward bool) (string, int, bool) {
	best, bestLen := -1, -1
	for i, m := range v.opts.Mappings {
		p := m.To
		if forward {
			p = m.From
		}
		if hasPathPrefix(url, p) && len(p) > bestLen {
			best, bestLen = i, len(p)
		}
	}
	if best < 0 {
		return "", 0, false
	}
	m := v.opts.Mappings[best]
	if forward {
		return m.To + url[len(m.From):], best, true
	}
	return m.From + url[len(m.To):], best, true
}

// hasPathPrefix reports whether url is prefix or below it, ignoring case, at a segment boundary.
func hasPathPrefix(url, prefix string) bool {
	if len(url) < len(prefix) || !strings.EqualFold(url[:len(prefix)], prefix) {
		return false
	}
	return len(url) == len(prefix) || url[len(prefix)] == '/' || prefix == "/"
}

func (v *validator) principal(p string) string {
	if m, ok := v.logins[strings.ToLower(p)]; ok {
		return m
	}
	return p
}

func (v *validator) compare(s, d *Item) []Failure {
	var out []Failure
	fail := func(c Check, a, b string) { out = append(out, Failure{Check: c, Source: a, Destination: b}) }
	if s.Size >= 0 && d.Size >= 0 && s.Size != d.Size {
		fail(CheckSize, strconv.FormatInt(s.Size, 10), strconv.FormatInt(d.Size, 10))
	}
	if !s.Modified.IsZero() && !d.Modified.IsZero() {
		if diff := s.Modified.Sub(d.Modified).Abs(); diff > v.opts.MtimeTolerance {
			fail(CheckModified, s.Modified.UTC().Format(time.RFC3339), d.Modified.UTC().Format(time.RFC3339))
		}
	}
	if s.Versions > 0 && d.Versions > 0 && s.Versions != d.Versions {
		fail(CheckVersions, strconv.Itoa(s.Versions), strconv.Itoa(d.Versions))
	}
	if s.Author != "" && d.Author != "" && !strings.EqualFold(v.principal(s.Author), d.Author) {
		fail(CheckAuthor, s.Author, d.Author)
	}
	if s.Editor != "" && d.Editor != "" && !strings.EqualFold(v.principal(s.Editor), d.Editor) {
		fail(CheckEditor, s.Editor, d.Editor)
	}
	if s.Permissions == PermissionsUnique && d.Permissions != PermissionsUnknown {
		want := v.mappedPrincipals(s.Principals)
		got := normPrincipals(d.Principals, func(p string) string { return p })
		if d.Permissions != PermissionsUnique || !slices.Equal(want, got) {
			fail(CheckPermissions, describe(PermissionsUnique, s.Principals), describe(d.Permissions, d.Principals))
		}
	}
	return out
}

func (v *validator) mappedPrincipals(ps []string) []string { return normPrincipals(ps, v.principal) }

// normPrincipals maps each "principal=role" through f, folds case and sorts.
func normPrincipals(ps []string, f func(string) string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		name, role, _ := strings.Cut(p, "=")
		out = append(out, strings.ToLower(f(name)+"="+role))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func describe(p Permissions, ps []string) string {
	if p != PermissionsUnique {
		return p.String()
	}
	s := slices.Clone(ps)
	slices.Sort(s)
	return "unique: " + strings.Join(s, "; ")
}

func (r *Result) summarise(v *validator) {
	sort.Slice(r.Items, func(i, j int) bool {
		a, b := &r.Items[i], &r.Items[j]
		if a.List != b.List {
			return a.List < b.List
		}
		ka, kb := a.SourceURL, b.SourceURL
		if ka == "" {
			ka, _, _ = v.mapURL(a.DestinationURL, false)
		}
		if kb == "" {
			kb, _, _ = v.mapURL(b.DestinationURL, false)
		}
		if ka != kb {
			return ka < kb
		}
		return a.DestinationURL < b.DestinationURL
	})
	r.Total = ListSummary{List: "(all)", ByCheck: map[Check]int{}}
	for i := range r.Items {
		it := &r.Items[i]
		if n := len(r.Lists); n == 0 || r.Lists[n-1].List != it.List {
			dl, _, _ := v.mapURL(it.List, true)
			r.Lists = append(r.Lists, ListSummary{List: it.List, DestinationList: dl, ByCheck: map[Check]int{}})
		}
		for _, s := range []*ListSummary{&r.Lists[len(r.Lists)-1], &r.Total} {
			s.Items++
			if it.Passed() {
				s.Passed++
			} else {
				s.Failed++
			}
			if it.SourceURL != "" && it.Size > 0 {
				s.Bytes += it.Size
			}
			for _, f := range it.Failures {
				s.ByCheck[f.Check]++
			}
		}
	}
}
