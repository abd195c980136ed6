package tenant

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	root := mustWeb(t, tn, "/sites/small")
	team := mustWeb(t, tn, "/sites/small/team")
	tests := []struct {
		url     string
		kind    TargetKind
		wantURL string
		webURL  string
		err     error
	}{
		{"/sites/small/Shared Documents", TargetList, "/sites/small/Shared Documents", root.ServerRelativeURL, nil},
		{"/sites/small/Shared%20Documents", TargetList, "/sites/small/Shared Documents", root.ServerRelativeURL, nil},
		{"https://contoso.sharepoint.com/sites/small/Shared%20Documents/", TargetList, "/sites/small/Shared Documents", root.ServerRelativeURL, nil},
		{"/SITES/SMALL/shared documents/team-0003", TargetFolder, "/sites/small/Shared Documents/Team-0003", root.ServerRelativeURL, nil},
		{"/sites/small/Shared Documents/Team-0012/Archive/Old", TargetFolder, "/sites/small/Shared Documents/Team-0012/Archive/Old", root.ServerRelativeURL, nil},
		{"/sites/small/Lists/Tasks", TargetList, "/sites/small/Lists/Tasks", root.ServerRelativeURL, nil},
		{"/sites/small/team/Notes/Drafts", TargetFolder, "/sites/small/team/Notes/Drafts", team.ServerRelativeURL, nil},
		{"/sites/small/Lists/Tasks/5_.000", TargetFile, "/sites/small/Lists/Tasks/5_.000", root.ServerRelativeURL, ErrNotContainer},
		{"/sites/small", "", "", "", ErrNotContainer},
		{"/sites/small/team", "", "", "", ErrNotContainer},
		{"/sites/small/Nope", "", "", "", ErrNotFound},
		{"/sites/nope/Shared Documents", "", "", "", ErrNotFound},
		{"/sites/small/Shared Documents/Team-3", "", "", "", ErrNotFound},
		{"/sites/small/Shared Documents/Team-0013", "", "", "", ErrNotFound},
		{"/sites/small/Shared Documents/Big/Report_999999.docx", "", "", "", ErrNotFound},
		{"/sites/small/Shared Documents/Big/x/y", "", "", "", ErrNotFound},
		{"/sites/small/Lists/Tasks/301_.000", "", "", "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			tg, err := tn.Resolve(tt.url)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("Resolve = %+v, %v; want error %v", tg, err, tt.err)
			}
			if tg.Kind != tt.kind || tg.ServerRelativeURL != tt.wantURL || tg.WebURL != tt.webURL {
				t.Errorf("Resolve = %+v, want kind %q, URL %q in web %q", tg, tt.kind, tt.wantURL, tt.webURL)
			}
			if tt.kind != "" && (tg.SiteID != root.SiteID || tg.ID == "" || tg.ListID == "" || tg.ParentID == "") {
				t.Errorf("Resolve = %+v: missing ids", tg)
			}
		})
	}
}

// TestResolveEveryObject resolves every file and folder the walk yields, in decoded and encoded
// form, including the names with odd characters.
func TestResolveEveryObject(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	tn.Mutate(50) // added files must resolve too
	list := resolve(t, tn, "/sites/small/Shared Documents")
	for _, o := range collect(t, tn, ReadOptions{}, list.ServerRelativeURL) {
		if o.Type != TypeFile && o.Type != TypeFolder {
			continue
		}
		escaped := strings.ReplaceAll(url.PathEscape(o.ServerURL), "%2F", "/")
		for _, u := range []string{o.ServerURL, escaped} {
			tg, err := tn.Resolve(u)
			if o.Type == TypeFile && (!errors.Is(err, ErrNotContainer) || tg.Kind != TargetFile || tg.ID != o.ID) ||
				o.Type == TypeFolder && (err != nil || tg.Kind != TargetFolder || tg.ID != o.ID || tg.ParentID != o.ParentID) {
				t.Errorf("Resolve(%q) = %+v, %v; want the %s %s", u, tg, err, o.Type, o.ID)
			}
		}
	}
	if list.ParentID != mustWeb(t, tn, "/sites/small").ID || list.ID != list.ListID {
		t.Errorf("list target %+v: want the list's id and its web as parent", list)
	}
}

func TestNavigation(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	sites := tn.Sites()
	if len(sites) != 1 || sites[0].ServerRelativeURL != "/sites/small" || sites[0].Title != "Small" {
		t.Fatalf("Sites() = %+v", sites)
	}
	if _, err := tn.Web("/sites/small/team/Notes"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Web of a list URL = %v, want ErrNotFound", err)
	}
	w, err := tn.WebOf("/sites/small/team/Notes/Drafts")
	if err != nil || w.ServerRelativeURL != "/sites/small/team" || w.SiteID != sites[0].ID {
		t.Errorf("WebOf = %+v, %v; want the team subweb", w, err)
	}
	if w, err := tn.WebOf("/sites/small/teamwork"); err != nil || w.ServerRelativeURL != "/sites/small" {
		t.Errorf("WebOf(/sites/small/teamwork) = %+v, %v; want the root web (prefix match is per segment)", w, err)
	}
	if s, err := tn.SiteOf("https://contoso.sharepoint.com/sites/small/team/Notes"); err != nil || s != sites[0] {
		t.Errorf("SiteOf = %+v, %v", s, err)
	}
	if _, err := tn.SiteOf("/sites/other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SiteOf(unknown) = %v, want ErrNotFound", err)
	}
	subs, err := tn.Subwebs("/sites/small")
	if err != nil || len(subs) != 1 || subs[0] != w {
		t.Errorf("Subwebs = %+v, %v; want [team]", subs, err)
	}
	lists, err := tn.Lists("/sites/small")
	if err != nil || len(lists) != 2 {
		t.Fatalf("Lists = %+v, %v", lists, err)
	}
	if lists[0].BaseTemplate != TemplateDocumentLibrary || lists[0].RootFolderURL != "/sites/small/Shared Documents" ||
		lists[1].BaseTemplate != TemplateGenericList || lists[1].ItemCount != 300 || lists[1].RootFolderURL != "/sites/small/Lists/Tasks" {
		t.Errorf("Lists = %+v", lists)
	}

	subfolders, err := tn.Subfolders("/sites/small/Shared Documents")
	if err != nil || len(subfolders) != 14 {
		t.Fatalf("Subfolders = %d, %v; want 12 Team folders, Big and Empty", len(subfolders), err)
	}
	var names []string
	for _, f := range subfolders[10:] {
		names = append(names, f.Name)
	}
	if want := []string{"Team-0011", "Team-0012", "Big", "Empty"}; !reflect.DeepEqual(names, want) {
		t.Errorf("last subfolders %v, want %v", names, want)
	}
	big := subfolders[12]
	if big.ItemCount != 1200 || big.FolderChildCount != 0 || big.SMTotalFileCount != 1200 || big.SMTotalSize <= 0 || big.Modified.IsZero() {
		t.Errorf("Big = %+v", big)
	}
	if f, err := tn.Folder(big.ServerRelativeURL); err != nil || f != big {
		t.Errorf("Folder(Big) = %+v, %v; Subfolders said %+v", f, err, big)
	}
	team := subfolders[0]
	if team.ItemCount != 31 || team.FolderChildCount != 1 || team.SMTotalFileCount != 40 {
		t.Errorf("Team-0001 = %+v, want 31 children (1 folder), 40 files below", team)
	}
	file := collect(t, tn, ReadOptions{IncludeDirectDescendantsOnly: true}, big.ServerRelativeURL)[2]
	if _, err := tn.Folder(file.ServerURL); !errors.Is(err, ErrNotContainer) {
		t.Errorf("Folder(file) = %v, want ErrNotContainer", err)
	}
	if _, err := tn.Subfolders("/sites/small/Shared Documents/Nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Subfolders(missing) = %v, want ErrNotFound", err)
	}
}
