package tenant

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// oneList is a one-site tenant with a single list built from root.
func oneList(template int, root FolderSpec, items int) Profile {
	return Profile{Seed: 7, Sites: []SiteSpec{{
		URL: "/sites/t", Title: "T", Users: 3, Groups: 3,
		Webs: []WebSpec{{Title: "T", Lists: []ListSpec{{Title: "L", Template: template, Root: root, Items: items}}}},
	}}}
}

func TestWalkCountsMatchArithmetic(t *testing.T) {
	nested := FolderSpec{Files: 3, Folders: []FolderSpec{{Name: "A", Files: 2, Folders: []FolderSpec{{Name: "B", Files: 1}}}}}
	repeated := FolderSpec{Folders: []FolderSpec{{Name: "X", Repeat: 5, Files: 4, Folders: []FolderSpec{{Name: "Y", Files: 2}}}}}
	tests := []struct {
		name     string
		template int
		root     FolderSpec
		items    int
		// full and shallow are the expected counts: files x2 + folders x2 + list items + 1 list.
		full, shallow int64
	}{
		{"empty library", TemplateDocumentLibrary, FolderSpec{}, 0, 1, 1},
		{"flat library", TemplateDocumentLibrary, FolderSpec{Files: 10}, 0, 1 + 10*2, 1 + 10*2},
		{"nested library", TemplateDocumentLibrary, nested, 0, 1 + 6*2 + 2*2, 1 + 3*2 + 1*2},
		{"repeated folders", TemplateDocumentLibrary, repeated, 0, 1 + 30*2 + 10*2, 1 + 5*2},
		{"generic list", TemplateGenericList, FolderSpec{}, 50, 1 + 50, 1 + 50},
		{"list with folders", TemplateGenericList, FolderSpec{Files: 5, Folders: []FolderSpec{{Name: "F", Repeat: 3, Files: 7}}}, 10, 1 + 36 + 3*2, 1 + 15 + 3*2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTenant(t, oneList(tt.template, tt.root, tt.items))
			url := "/sites/t/L"
			if tt.template == TemplateGenericList {
				url = "/sites/t/Lists/L"
			}
			if got := countWalk(t, tn, url, ReadOptions{}); got != tt.full {
				t.Errorf("full walk: %d objects, want %d", got, tt.full)
			}
			if got := countWalk(t, tn, url, ReadOptions{IncludeDirectDescendantsOnly: true}); got != tt.shallow {
				t.Errorf("shallow walk: %d objects, want %d", got, tt.shallow)
			}
			if got := countWalk(t, tn, url, ReadOptions{IncludePermission: true, IncludeVersions: true}); got != tt.full+2 {
				t.Errorf("walk with permissions: %d objects, want %d", got, tt.full+2)
			}
		})
	}
}

func TestWalkTotalsMatchObjects(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	for _, l := range allLists(t, tn) {
		objs := collect(t, tn, ReadOptions{}, l.RootFolderURL)
		folders := checkTotals(t, objs)
		if got := int(objs[0].SMTotalFileCount + folders); got != l.ItemCount {
			t.Errorf("%s: Lists() ItemCount %d, the walk holds %d items", l.Title, l.ItemCount, got)
		}
		var size int64
		for _, o := range objs {
			size += o.Size
		}
		f, err := tn.Folder(l.RootFolderURL)
		if err != nil {
			t.Fatal(err)
		}
		if f.SMTotalSize != size {
			t.Errorf("%s: SMTotalSize %d, the walk's files hold %d bytes", l.Title, f.SMTotalSize, size)
		}
	}
}

// TestWalkObjectShape checks the invariants the export writer relies on.
func TestWalkObjectShape(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	epoch := tn.Now()
	for _, l := range allLists(t, tn) {
		objs := collect(t, tn, ReadOptions{IncludeVersions: true}, l.RootFolderURL)
		ids, intIDs := map[string]bool{}, map[int]string{}
		for i, o := range objs {
			if ids[o.ID] {
				t.Errorf("%s: duplicate id %s", o.ServerURL, o.ID)
			}
			ids[o.ID] = true
			if o.Created.After(o.Modified) || !o.Modified.Before(epoch) || o.Created.Location() != time.UTC || o.Modified.Nanosecond() != 0 {
				t.Errorf("%s %s: created %v, modified %v: want UTC whole seconds, created <= modified < %v", o.Type, o.ServerURL, o.Created, o.Modified, epoch)
			}
			for _, v := range o.Versions {
				if v.Modified.After(o.Modified) || labelOrder(t, v.Label) >= labelOrder(t, o.Version) {
					t.Errorf("%s: version %s (%v) is not before the current %s (%v)", o.ServerURL, v.Label, v.Modified, o.Version, o.Modified)
				}
			}
			switch o.Type {
			case TypeFile, TypeFolder:
				next := objs[i+1]
				wantDoc := map[ObjectType]string{TypeFile: "File", TypeFolder: "Folder"}[o.Type]
				if next.Type != TypeListItem || next.DocType != wantDoc || next.DocID != o.ID || next.IntID != o.IntID || next.ServerURL != o.ServerURL {
					t.Errorf("%s %s is followed by %s %q DocId %s, want its SPListItem", o.Type, o.ServerURL, next.Type, next.DocType, next.DocID)
				}
				if o.WebRelURL != strings.TrimPrefix(o.ServerURL, o.WebURL+"/") {
					t.Errorf("%s: WebRelURL %q does not match web %s", o.ServerURL, o.WebRelURL, o.WebURL)
				}
			case TypeListItem:
				if prev, ok := intIDs[o.IntID]; ok && prev != o.ServerURL {
					t.Errorf("IntID %d is both %s and %s", o.IntID, prev, o.ServerURL)
				}
				intIDs[o.IntID] = o.ServerURL
				if strings.HasPrefix(o.DocType, "Folder") != strings.HasPrefix(o.ContentType, "0x0120") {
					t.Errorf("%s: DocType %q with content type %s", o.ServerURL, o.DocType, o.ContentType)
				}
			}
		}
	}
}

func TestWalkOddNames(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	var xmlInvalid, nonASCII, special int
	for _, o := range collect(t, tn, ReadOptions{}, "/sites/small/Shared Documents") {
		if o.Type != TypeFile {
			continue
		}
		if strings.ContainsAny(o.Name, "\u0001\ufffe") {
			xmlInvalid++
		}
		if strings.ContainsAny(o.Name, "#%&'") || o.Name[0] >= '0' && o.Name[0] <= '9' {
			special++
		}
		for _, r := range o.Name {
			if r >= utf8.RuneSelf {
				nonASCII++
				break
			}
		}
	}
	if xmlInvalid == 0 || nonASCII == 0 || special == 0 {
		t.Errorf("SmallProfile has %d names with XML-invalid characters, %d non-ASCII, %d with specials or a leading digit; want some of each", xmlInvalid, nonASCII, special)
	}

	// At the default rate about one name in 2,000 is odd.
	def := newTenant(t, DefaultProfile())
	odd, files := 0, 0
	for _, o := range collect(t, def, ReadOptions{IncludeDirectDescendantsOnly: true}, "/sites/engineering/Shared Documents/Specs") {
		if o.Type != TypeFile {
			continue
		}
		files++
		if !isPlainStem(o.Name[:strings.LastIndexByte(o.Name, '_')]) {
			odd++
		}
	}
	if odd < files/4000 || odd > files/1000 {
		t.Errorf("%d odd names among %d files, want about one in 2,000", odd, files)
	}
}

// labelOrder orders version labels ("2.1" after "2.0", "10.0" after "9.1").
func labelOrder(t *testing.T, label string) int {
	t.Helper()
	major, minor, ok := strings.Cut(label, ".")
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(minor)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("bad version label %q", label)
	}
	return a*1000 + b
}

func isPlainStem(s string) bool {
	for _, p := range fileStems {
		if s == p {
			return true
		}
	}
	return false
}

func TestWalkDeterminism(t *testing.T) {
	opts := ReadOptions{IncludeVersions: true, IncludeExtendedMetadata: true, IncludePermission: true}
	urls := []string{"/sites/small/Shared Documents", "/sites/small/Lists/Tasks", "/sites/small/team/Notes"}
	a := fingerprint(collect(t, newTenant(t, SmallProfile()), opts, urls...))
	b := fingerprint(collect(t, newTenant(t, SmallProfile()), opts, urls...))
	if a != b {
		t.Error("two tenants from the same profile yield different objects")
	}
	p := SmallProfile()
	p.Seed++
	if c := fingerprint(collect(t, newTenant(t, p), opts, urls...)); c == a {
		t.Error("a different seed yields the same objects")
	}
}

func TestWalkOptions(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	url := "/sites/small/Shared Documents"
	has := func(objs []*Object, pred func(*Object) bool) bool {
		for _, o := range objs {
			if pred(o) {
				return true
			}
		}
		return false
	}
	versions := func(o *Object) bool { return len(o.Versions) > 0 }
	extended := func(o *Object) bool { return o.Type == TypeFile && len(o.Extended) > 0 }
	permObjs := func(o *Object) bool { return o.Type == TypeRoles || o.Type == TypeRoleAssignments }

	plain := collect(t, tn, ReadOptions{}, url)
	if has(plain, versions) || has(plain, extended) || has(plain, permObjs) {
		t.Error("a walk without options carries versions, extended metadata or permissions")
	}
	if !has(collect(t, tn, ReadOptions{IncludeVersions: true}, url), versions) {
		t.Error("IncludeVersions: no object carries versions")
	}
	if !has(collect(t, tn, ReadOptions{IncludeExtendedMetadata: true}, url), extended) {
		t.Error("IncludeExtendedMetadata: no file carries extended attributes")
	}
	sec := collect(t, tn, ReadOptions{IncludeSecurity: true}, url)
	if fingerprint(sec) != fingerprint(plain) {
		t.Error("IncludeSecurity changes the walk")
	}
}

// TestWalkPermissions checks that DeploymentRoleAssignments holds exactly the list and every
// yielded object whose scope differs from its parent's (that breaks inheritance).
func TestWalkPermissions(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	for _, url := range []string{"/sites/small/Shared Documents", "/sites/small/Lists/Tasks", "/sites/small/Shared Documents/Team-0003"} {
		objs := collect(t, tn, ReadOptions{IncludePermission: true}, url)
		n := len(objs)
		if n < 3 || objs[n-2].Type != TypeRoles || objs[n-1].Type != TypeRoleAssignments {
			t.Fatalf("%s: the walk does not end with DeploymentRoles and DeploymentRoleAssignments", url)
		}
		if got := len(objs[n-2].Roles); got < 5 || objs[n-2].Roles[4].RoleID != RoleFullControl {
			t.Errorf("%s: %d role definitions, want the standard ones through Full Control", url, got)
		}
		scope := map[string]string{} // folder id -> scope
		want := map[string]bool{}
		target := resolve(t, tn, url)
		want[target.ListID] = true
		if target.Kind == TargetFolder {
			scope[target.ParentID] = "(parent)" // the target folder's own parent is outside the walk
		}
		for _, o := range objs[:n-2] {
			switch {
			case o.Type == TypeList || o.Type == TypeDocumentLibrary:
				scope[o.RootFolderID] = o.ScopeID
			case o.Type == TypeFile:
				continue // its SPListItem follows with the same scope
			default:
				if ps, ok := scope[o.ParentID]; ok && ps != "(parent)" && ps != o.ScopeID {
					id := o.ID
					if o.DocID != "" {
						id = o.DocID
					}
					want[id] = true
				}
				if o.Type == TypeFolder {
					scope[o.ID] = o.ScopeID
				}
			}
		}
		got := map[string]bool{}
		for _, ra := range objs[n-1].RoleAssignments {
			got[ra.ObjectID] = true
			if len(ra.Assignments) == 0 {
				t.Errorf("%s: role assignment of %s has no assignments", url, ra.ObjectURL)
			}
		}
		for id := range want {
			if !got[id] && !(target.Kind == TargetFolder && id == target.ID) {
				t.Errorf("%s: object %s breaks inheritance but has no role assignment", url, id)
			}
		}
		if len(want) < 2 {
			t.Errorf("%s: only %d objects with unique permissions, want the list and more", url, len(want))
		}
		for id := range got {
			if !want[id] && id != target.ID {
				t.Errorf("%s: role assignment for %s, which inherits", url, id)
			}
		}
	}
}

// TestShallowWalkOfMillionFolder checks that a probe of the >1M folder yields exactly its direct
// children, and that its cost does not depend on what lies below them.
func TestShallowWalkOfMillionFolder(t *testing.T) {
	tn := newTenant(t, DefaultProfile())
	const url = "/sites/archive/Records/2019"
	target := resolve(t, tn, url)
	opts := ReadOptions{IncludeDirectDescendantsOnly: true}
	objs := collect(t, tn, opts, url)
	// The folder's two objects, 5 files x 2, 12 month folders x 2.
	if len(objs) != 2+5*2+12*2 {
		t.Fatalf("shallow walk yields %d objects, want 36", len(objs))
	}
	var below int64
	for _, o := range objs[2:] {
		if o.ParentID != target.ID {
			t.Errorf("%s is not a direct child of %s", o.ServerURL, url)
		}
		if o.Type == TypeFolder {
			below += o.SMTotalFileCount
			if o.SMTotalFileCount != 90_000 {
				t.Errorf("%s: SMTotalFileCount %d, want 90000", o.ServerURL, o.SMTotalFileCount)
			}
		}
	}
	if below+5 != objs[0].SMTotalFileCount || below < 1_000_000 {
		t.Errorf("month folders hold %d files, the folder says %d", below, objs[0].SMTotalFileCount)
	}
	allocs := testing.AllocsPerRun(3, func() {
		if err := tn.Walk(context.Background(), []Target{target}, opts, func(*Object) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	// A few dozen allocations per object yielded; materialising the tree would take millions.
	if allocs > 50*float64(len(objs)) {
		t.Errorf("shallow walk of 36 objects makes %.0f allocations", allocs)
	}
	if n, err := tn.Count(context.Background(), []Target{target}, ReadOptions{}); err != nil || n != 2+2*1_080_005+2*24 {
		t.Errorf("Count of the full tree = %d, %v; want %d", n, err, 2+2*1_080_005+2*24)
	}
}

// TestWalkMemoryIsFlat walks 130K objects of a library and checks the live heap does not grow
// with the number of objects yielded.
func TestWalkMemoryIsFlat(t *testing.T) {
	tn := newTenant(t, DefaultProfile())
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var n int
	var early, late uint64
	enough := errors.New("enough")
	err := tn.Walk(context.Background(), []Target{resolve(t, tn, "/sites/engineering/Shared Documents")}, ReadOptions{}, func(*Object) error {
		n++
		switch n {
		case 5_000:
			early = heap()
		case 130_000:
			late = heap()
			return enough
		}
		return nil
	})
	if !errors.Is(err, enough) {
		t.Fatalf("walk: %d objects, %v", n, err)
	}
	if late > early+2<<20 {
		t.Errorf("live heap grew from %d to %d bytes between object 5,000 and 130,000", early, late)
	}
}

func TestWalkStops(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	target := resolve(t, tn, "/sites/small/Shared Documents")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err := tn.Walk(ctx, []Target{target}, ReadOptions{}, func(*Object) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 10+256 {
		t.Errorf("after cancel: %d objects, err %v; want context.Canceled promptly", n, err)
	}

	boom := errors.New("sink full")
	n = 0
	err = tn.Walk(context.Background(), []Target{target}, ReadOptions{}, func(*Object) error {
		n++
		if n == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 3 {
		t.Errorf("fn error: %d objects, err %v; want the error after 3", n, err)
	}
}

func TestWalkRejectsFilesAndUnknownTargets(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	file := collect(t, tn, ReadOptions{IncludeDirectDescendantsOnly: true}, "/sites/small/Shared Documents")[1]
	tests := []struct {
		name   string
		target Target
		want   error
	}{
		{"file", Target{Kind: TargetFile, ServerRelativeURL: file.ServerURL}, ErrNotContainer},
		{"file URL marked as folder", Target{Kind: TargetFolder, ServerRelativeURL: file.ServerURL}, ErrNotContainer},
		{"missing folder", Target{Kind: TargetFolder, ServerRelativeURL: "/sites/small/Shared Documents/Nope"}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yielded := false
			err := tn.Walk(context.Background(), []Target{resolve(t, tn, "/sites/small/Lists/Tasks"), tt.target}, ReadOptions{}, func(*Object) error {
				yielded = true
				return nil
			})
			if !errors.Is(err, tt.want) || yielded {
				t.Errorf("Walk = %v (yielded %v), want %v before any object", err, yielded, tt.want)
			}
			if _, err := tn.Count(context.Background(), []Target{tt.target}, ReadOptions{}); !errors.Is(err, tt.want) {
				t.Errorf("Count = %v, want %v", err, tt.want)
			}
		})
	}
}

func BenchmarkWalk(b *testing.B) {
	tn := newTenant(b, DefaultProfile())
	target := resolve(b, tn, "/sites/engineering/Shared Documents")
	for _, bc := range []struct {
		name string
		opts ReadOptions
	}{
		{"plain", ReadOptions{}},
		{"all-options", ReadOptions{IncludeVersions: true, IncludeExtendedMetadata: true, IncludePermission: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var n int64
			for b.Loop() {
				if err := tn.Walk(context.Background(), []Target{target}, bc.opts, func(*Object) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "objects/s")
		})
	}
}
