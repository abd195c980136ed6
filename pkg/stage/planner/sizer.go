package planner

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// Sizer implements sizing.Sizer over SharePoint's folder REST calls: the web of a URL (found by
// walking Subwebs down from the site), the list containing it (Lists), and its size: for a folder
// the files below it (FolderTotals: StorageMetrics.TotalFileCount, else SMTotalFileCount), for a
// list root the list's ItemCount. Every call goes through the shared SharePoint caller
// (stage.Call). It caches what it learns, so make one per plan; it is not safe for concurrent use.
type Sizer struct {
	sp     *stage.SharePoint
	origin string // scheme://host[:port] of the site
	site   string // the site URL, without a trailing slash

	root      *spo.Web
	subwebs   map[string][]spo.Web  // by lower-case server-relative web URL
	lists     map[string][]spo.List // likewise
	listsRead map[string]time.Time  // when lists[k] was read: the issue time of its change tokens
	resolved  map[string]sizing.Node
}

// NewSizer returns a Sizer for the site collection at siteURL.
func NewSizer(sp *stage.SharePoint, siteURL string) (*Sizer, error) {
	u, err := url.Parse(siteURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("site %q is not an absolute http(s) URL", siteURL)
	}
	return &Sizer{
		sp: sp, origin: u.Scheme + "://" + u.Host, site: strings.TrimRight(siteURL, "/"),
		subwebs: map[string][]spo.Web{}, lists: map[string][]spo.List{}, listsRead: map[string]time.Time{}, resolved: map[string]sizing.Node{},
	}, nil
}

// SizeError marks an error of a Sizer call (judged by stage.Verdict like any SharePoint error),
// so the stage can tell it from the planner's own validation errors, which are permanent.
type SizeError struct{ Err error }

func (e *SizeError) Error() string { return e.Err.Error() }
func (e *SizeError) Unwrap() error { return e.Err }

// location is where a URL lives.
type location struct {
	url  string // absolute, without a trailing slash, path decoded
	path string // server-relative, decoded
	web  spo.Web
	list spo.List
	// listRead is when list (and its change token) was read.
	listRead time.Time
}

func (s *Sizer) webURL(w spo.Web) string {
	return s.origin + strings.TrimRight(w.ServerRelativeURL, "/")
}

// Resolve implements sizing.Sizer.
func (s *Sizer) Resolve(ctx context.Context, rawURL string) (sizing.Node, error) {
	loc, err := s.locate(ctx, rawURL)
	if err != nil {
		return sizing.Node{}, err
	}
	key := strings.ToLower(loc.url)
	if n, ok := s.resolved[key]; ok {
		return n, nil
	}
	n := sizing.Node{URL: loc.url, WebURL: s.webURL(loc.web), ListID: loc.list.ID, ListURL: s.origin + strings.TrimRight(loc.list.RootFolderURL, "/")}
	if samePath(loc.path, loc.list.RootFolderURL) {
		// A list root has no list item; the list's ItemCount counts every file, folder and item
		// in it at any depth (docs/amr-protocol.md §7.3 C9): at least its file count.
		n.Kind, n.Items, n.ListURL = sizing.KindList, loc.list.ItemCount, loc.url
	} else {
		n.Kind = sizing.KindFolder
		if n.Items, err = s.totals(ctx, n.WebURL, loc.path); err != nil {
			return sizing.Node{}, err
		}
	}
	// The list's token, read before any job of the plan exists: safe to start its next pass from.
	n.ChangeToken, n.TokenRead = loc.list.ChangeToken, loc.listRead
	s.resolved[key] = n
	return n, nil
}

// Children implements sizing.Sizer: the direct subfolders with their totals, from the listing's
// StorageMetrics (one request for them all), else asked of each subfolder that lacks them.
func (s *Sizer) Children(ctx context.Context, rawURL string) ([]sizing.Node, error) {
	loc, subs, err := s.subfolders(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	web := s.webURL(loc.web)
	kids := make([]sizing.Node, 0, len(subs))
	for _, f := range subs {
		n := sizing.Node{URL: s.origin + f.ServerRelativeURL, WebURL: web, ListID: loc.list.ID,
			ListURL: s.origin + strings.TrimRight(loc.list.RootFolderURL, "/"), Kind: sizing.KindFolder}
		if f.Totals.Known {
			n.Items = size(f.Totals)
		} else if n.Items, err = s.totals(ctx, web, f.ServerRelativeURL); err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	return kids, nil
}

// SizeSubfolders implements sizing.SubfolderSizer: the sizes one listing of the folder at rawURL
// gave of its direct subfolders (their StorageMetrics), keyed by sizing.ScopeKey of their URLs. A
// subfolder the listing gave no totals for is left out, for the caller to Resolve; on a tenant that
// refused StorageMetrics in a listing it lists nothing, as the listing would size nothing.
func (s *Sizer) SizeSubfolders(ctx context.Context, rawURL string) (map[string]int64, error) {
	if !s.sp.Client.ListsFolderTotals(s.site) {
		return nil, nil
	}
	_, subs, err := s.subfolders(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]int64, len(subs))
	for _, f := range subs {
		if f.Totals.Known {
			sizes[sizing.ScopeKey(s.origin+f.ServerRelativeURL)] = size(f.Totals)
		}
	}
	return sizes, nil
}

// subfolders lists the direct subfolders of the folder at rawURL, with their totals when
// SharePoint gave them.
func (s *Sizer) subfolders(ctx context.Context, rawURL string) (location, []spo.Folder, error) {
	loc, err := s.locate(ctx, rawURL)
	if err != nil {
		return location{}, nil, err
	}
	web := s.webURL(loc.web)
	subs, err := do(ctx, s, func(ctx context.Context) ([]spo.Folder, error) { return s.sp.Client.Subfolders(ctx, web, loc.path) })
	if err != nil {
		return location{}, nil, err
	}
	return loc, subs, nil
}

// totals returns a folder's size (see size) asked of the folder alone (FolderTotals).
func (s *Sizer) totals(ctx context.Context, web, path string) (int64, error) {
	t, err := do(ctx, s, func(ctx context.Context) (spo.Totals, error) { return s.sp.Client.FolderTotals(ctx, web, path) })
	if err != nil {
		return 0, err
	}
	return size(t), nil
}

// size is a folder's size for the sizing rules: the number of files below it, the count
// Microsoft's thresholds come with (docs/amr-protocol.md §6.2), or sizing.UnknownItems when
// SharePoint gave none. It is never less than the folder's direct children (ItemCount): a folder
// of a generic list holds items, not files, and a file count may leave them out.
func size(t spo.Totals) int64 {
	if !t.Known {
		return sizing.UnknownItems
	}
	return max(t.FileCount, t.ItemCount)
}

// locate finds the web and the list of a URL in the site.
func (s *Sizer) locate(ctx context.Context, rawURL string) (location, error) {
	loc, err := s.parse(rawURL)
	if err != nil {
		return location{}, &SizeError{&bus.Permanent{Reason: err.Error()}}
	}
	if loc.web, err = s.webOf(ctx, loc.path); err != nil {
		return location{}, err
	}
	lists, err := s.webLists(ctx, loc.web)
	if err != nil {
		return location{}, err
	}
	best := -1
	for i, l := range lists {
		if pathUnder(loc.path, l.RootFolderURL) && (best < 0 || len(l.RootFolderURL) > len(lists[best].RootFolderURL)) {
			best = i
		}
	}
	if best < 0 {
		return location{}, &SizeError{&bus.Permanent{Reason: fmt.Sprintf(
			"%s is in no list or library of web %s (AMR reads lists, libraries and folders only)", loc.url, s.webURL(loc.web))}}
	}
	loc.list, loc.listRead = lists[best], s.listsRead[strings.ToLower(loc.web.ServerRelativeURL)]
	return loc, nil
}

// parse checks that rawURL is on the site's host and returns it with its decoded path. The path
// is not parsed as a URL path, because SharePoint names may hold '#'; it is percent-decoded as
// SharePoint does ("Shared%20Documents" is "Shared Documents"), unless it does not decode (a
// literal '%').
func (s *Sizer) parse(rawURL string) (location, error) {
	clean := strings.TrimRight(strings.TrimSpace(rawURL), "/")
	scheme, rest, ok := strings.Cut(clean, "://")
	host, path, _ := strings.Cut(rest, "/")
	if !ok || !strings.EqualFold(scheme+"://"+host, s.origin) {
		return location{}, fmt.Errorf("%s is not on the site's host %s", clean, s.origin)
	}
	path = "/" + path
	if d, err := url.PathUnescape(path); err == nil {
		path = d
	}
	if !pathUnder(path, s.site[len(s.origin):]) {
		return location{}, fmt.Errorf("%s is not in site %s", clean, s.site)
	}
	return location{url: s.origin + strings.TrimRight(path, "/"), path: path}, nil
}

// webOf walks down from the site's root web through Subwebs to the deepest web holding path.
// (SharePoint also answers /_api/web below a web with the web holding it, but the walk needs no
// such assumption and costs one call per level, cached.)
func (s *Sizer) webOf(ctx context.Context, path string) (spo.Web, error) {
	if s.root == nil {
		w, err := do(ctx, s, func(ctx context.Context) (spo.Web, error) { return s.sp.Client.Web(ctx, s.site) })
		if err != nil {
			return spo.Web{}, err
		}
		s.root = &w
	}
	cur := *s.root
	for {
		key := strings.ToLower(cur.ServerRelativeURL)
		subs, ok := s.subwebs[key]
		if !ok {
			var err error
			if subs, err = do(ctx, s, func(ctx context.Context) ([]spo.Web, error) { return s.sp.Client.Subwebs(ctx, s.webURL(cur)) }); err != nil {
				return spo.Web{}, err
			}
			s.subwebs[key] = subs
		}
		next := -1
		for i, w := range subs {
			if pathUnder(path, w.ServerRelativeURL) {
				next = i
				break
			}
		}
		if next < 0 {
			return cur, nil
		}
		cur = subs[next]
	}
}

func (s *Sizer) webLists(ctx context.Context, w spo.Web) ([]spo.List, error) {
	key := strings.ToLower(w.ServerRelativeURL)
	if l, ok := s.lists[key]; ok {
		return l, nil
	}
	read := time.Now()
	l, err := do(ctx, s, func(ctx context.Context) ([]spo.List, error) { return s.sp.Client.Lists(ctx, s.webURL(w)) })
	if err != nil {
		return nil, err
	}
	s.lists[key], s.listsRead[key] = l, read
	return l, nil
}

// do makes one SharePoint call through the shared caller.
func do[T any](ctx context.Context, s *Sizer, fn func(context.Context) (T, error)) (T, error) {
	v, err := stage.Call(ctx, s.sp, s.site, fn)
	if err != nil {
		return v, &SizeError{err}
	}
	return v, nil
}

// pathUnder reports whether the server-relative path p is root or below it; SharePoint paths
// are case-insensitive.
func pathUnder(p, root string) bool {
	lp, lr := strings.ToLower(strings.TrimRight(p, "/")), strings.ToLower(strings.TrimRight(root, "/"))
	return lp == lr || strings.HasPrefix(lp, lr+"/")
}

func samePath(a, b string) bool {
	return strings.EqualFold(strings.TrimRight(a, "/"), strings.TrimRight(b, "/"))
}
