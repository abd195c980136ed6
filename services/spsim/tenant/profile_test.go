package tenant

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"
)

func TestParseProfileFixture(t *testing.T) {
	p, err := LoadProfile("testdata/tiny.json")
	if err != nil {
		t.Fatalf("LoadProfile: %v", err)
	}
	tn, err := New(p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if want := time.Date(2025, 11, 3, 12, 0, 0, 0, time.UTC); !tn.Now().Equal(want) {
		t.Errorf("Now() = %v, want the profile epoch %v", tn.Now(), want)
	}
	// 3 + 2x4 files and 2 folders: the library, 11 files x 2 and 2 folders x 2.
	if got := countWalk(t, tn, "/sites/tiny/Shared Documents", ReadOptions{}); got != 27 {
		t.Errorf("library walk yields %d objects, want 27", got)
	}
	if got := countWalk(t, tn, "/sites/tiny/Lists/Contacts", ReadOptions{}); got != 7 {
		t.Errorf("list walk yields %d objects, want 7", got)
	}
}

func TestProfileJSONRoundTrip(t *testing.T) {
	for name, p := range map[string]Profile{"default": DefaultProfile(), "small": SmallProfile()} {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseProfile(data)
		if err != nil {
			t.Fatalf("%s: ParseProfile(Marshal(p)): %v", name, err)
		}
		if !reflect.DeepEqual(back, p) {
			t.Errorf("%s: profile changed through JSON:\n got %+v\nwant %+v", name, back, p)
		}
	}
}

func TestProfileValidation(t *testing.T) {
	valid := func() Profile { return SmallProfile() }
	tests := []struct {
		name   string
		mutate func(*Profile)
	}{
		{"no sites", func(p *Profile) { p.Sites = nil }},
		{"relative site URL", func(p *Profile) { p.Sites[0].URL = "sites/x" }},
		{"no users", func(p *Profile) { p.Sites[0].Users = 0 }},
		{"too few groups", func(p *Profile) { p.Sites[0].Groups = 2 }},
		{"no root web", func(p *Profile) { p.Sites[0].Webs = p.Sites[0].Webs[1:] }},
		{"duplicate web", func(p *Profile) { p.Sites[0].Webs[1].Path = "" }},
		{"duplicate list URL", func(p *Profile) {
			w := &p.Sites[0].Webs[0]
			w.Lists = append(w.Lists, w.Lists[0])
		}},
		{"unknown template", func(p *Profile) { p.Sites[0].Webs[0].Lists[0].Template = 119 }},
		{"unknown field type", func(p *Profile) {
			p.Sites[0].Webs[0].Lists[1].Fields = []FieldSpec{{Name: "X", Type: "Currency"}}
		}},
		{"choice without choices", func(p *Profile) {
			p.Sites[0].Webs[0].Lists[1].Fields = []FieldSpec{{Name: "X", Type: FieldChoice}}
		}},
		{"folder name with slash", func(p *Profile) {
			p.Sites[0].Webs[0].Lists[0].Root.Folders[0].Name = "a/b"
		}},
		{"duplicate folder", func(p *Profile) {
			r := &p.Sites[0].Webs[0].Lists[0].Root
			r.Folders = append(r.Folders, r.Folders[1])
		}},
		{"negative files", func(p *Profile) { p.Sites[0].Webs[0].Lists[0].Root.Files = -1 }},
		{"minor percent over 100", func(p *Profile) { p.Sites[0].Webs[0].Lists[0].Versions.MinorPercent = 101 }},
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("SmallProfile is invalid: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := valid()
			tt.mutate(&p)
			if _, err := New(p); !errors.Is(err, ErrBadProfile) {
				t.Errorf("New = %v, want ErrBadProfile", err)
			}
		})
	}
	if _, err := ParseProfile([]byte(`{"Seed":1,"Sitez":[]}`)); err == nil {
		t.Error("ParseProfile accepted an unknown field")
	}
	if _, err := LoadProfile("testdata/missing.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadProfile(missing) = %v, want os.ErrNotExist", err)
	}
}

// TestDefaultProfileTiers checks what the planner's tests rely on: DefaultProfile holds folders of
// every size tier both at SharePoint's thresholds (10K/1M) and at the lowered ones (2K/50K), and
// well over 200K items in all.
func TestDefaultProfileTiers(t *testing.T) {
	tn := newTenant(t, DefaultProfile())
	var sizes []int64 // files below each folder, the size the planner compares with its thresholds
	var total int64
	var walk func(url string)
	walk = func(url string) {
		subs, err := tn.Subfolders(url)
		if err != nil {
			t.Fatalf("Subfolders(%s): %v", url, err)
		}
		for _, f := range subs {
			sizes = append(sizes, f.SMTotalFileCount)
			walk(f.ServerRelativeURL)
		}
	}
	for _, s := range tn.Sites() {
		for _, w := range append([]Web{mustWeb(t, tn, s.ServerRelativeURL)}, mustSubwebs(t, tn, s.ServerRelativeURL)...) {
			lists, err := tn.Lists(w.ServerRelativeURL)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lists {
				total += int64(l.ItemCount)
				walk(l.RootFolderURL)
			}
		}
	}
	if total < 1_000_000 {
		t.Errorf("DefaultProfile has %d items, want over a million", total)
	}
	for _, th := range []struct{ small, large int64 }{{2_000, 50_000}, {10_000, 1_000_000}} {
		var tiny, mid, huge int
		for _, n := range sizes {
			switch {
			case n < th.small:
				tiny++
			case n <= th.large:
				mid++
			default:
				huge++
			}
		}
		if tiny < 100 || mid < 3 || huge < 1 {
			t.Errorf("thresholds %d/%d: %d tiny, %d mid-size, %d huge folders; want >=100, >=3, >=1", th.small, th.large, tiny, mid, huge)
		}
	}
	f, err := tn.Folder("/sites/archive/Records/2019")
	if err != nil {
		t.Fatal(err)
	}
	if f.SMTotalFileCount <= 1_000_000 {
		t.Errorf("Records/2019 holds %d files, want over a million", f.SMTotalFileCount)
	}
}

func mustWeb(t *testing.T, tn *Tenant, url string) Web {
	t.Helper()
	w, err := tn.Web(url)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustSubwebs(t *testing.T, tn *Tenant, url string) []Web {
	t.Helper()
	ws, err := tn.Subwebs(url)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}
