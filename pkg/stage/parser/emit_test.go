package parser

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

const (
	host = "https://contoso.sharepoint.com"
	web  = host + "/sites/hr"
)

// Records as pkg/sharepoint/manifest yields them, reduced to what the Emit policy looks at.
func spObject(typ, path string) *amrpipev1.SPObjectHeader {
	return &amrpipev1.SPObjectHeader{ObjectType: typ, ServerRelativeUrl: path}
}

func fileRec(path string) *amrpipev1.Record {
	return &amrpipev1.Record{ObjectType: "SPFile", ObjectId: "file:" + path, SpObject: spObject("SPFile", path),
		Body: &amrpipev1.Record_File{File: &amrpipev1.File{ServerRelativeUrl: path}}}
}

func folderRec(path string) *amrpipev1.Record {
	return &amrpipev1.Record{ObjectType: "SPFolder", ObjectId: "folder:" + path, SpObject: spObject("SPFolder", path),
		Body: &amrpipev1.Record_Folder{Folder: &amrpipev1.Folder{ServerRelativeUrl: path}}}
}

func itemRec(path, docType string) *amrpipev1.Record {
	return &amrpipev1.Record{ObjectType: "SPListItem", ObjectId: "item:" + path, SpObject: spObject("SPListItem", path),
		Body: &amrpipev1.Record_ListItem{ListItem: &amrpipev1.ListItem{ServerRelativeUrl: path, DocType: docType}}}
}

func listRec(path string) *amrpipev1.Record {
	return &amrpipev1.Record{ObjectType: "SPDocumentLibrary", ObjectId: "list:" + path, SpObject: spObject("SPDocumentLibrary", path),
		Body: &amrpipev1.Record_List{List: &amrpipev1.List{RootFolderUrl: path}}}
}

func raRec(objectURL string) *amrpipev1.Record {
	return &amrpipev1.Record{ObjectType: "RoleAssignment", ObjectId: "ra:" + objectURL,
		Body: &amrpipev1.Record_RoleAssignment{RoleAssignment: &amrpipev1.RoleAssignment{ObjectUrl: objectURL}}}
}

func userRec(id int64) *amrpipev1.Record {
	return &amrpipev1.Record{ObjectType: "User", ObjectId: fmt.Sprint("user:", id), Body: &amrpipev1.Record_User{User: &amrpipev1.User{Id: id}}}
}

func roleRec(id int64) *amrpipev1.Record {
	return &amrpipev1.Record{ObjectType: "Role", ObjectId: fmt.Sprint("role:", id), Body: &amrpipev1.Record_Role{Role: &amrpipev1.Role{RoleId: id}}}
}

func settingsRec() *amrpipev1.Record {
	return &amrpipev1.Record{ObjectType: "ExportSettings", Body: &amrpipev1.Record_ExportSettings{ExportSettings: &amrpipev1.ExportSettings{}}}
}

func TestPolicyDecide(t *testing.T) {
	folderJob := &amrpipev1.JobSpec{WebUrl: web, Urls: []string{web + "/Docs/Reports"}, Emit: amrpipev1.Emit_EMIT_ALL, EmitPrincipals: true}
	probe := &amrpipev1.JobSpec{WebUrl: web, Urls: []string{web + "/Docs"}, Emit: amrpipev1.Emit_EMIT_PROBE, Probe: true}
	security := &amrpipev1.JobSpec{WebUrl: web, Urls: []string{web + "/Docs"}, Emit: amrpipev1.Emit_EMIT_SECURITY_ONLY, EmitPrincipals: true}
	incremental := &amrpipev1.JobSpec{WebUrl: web, Urls: []string{web + "/Docs"}, Emit: amrpipev1.Emit_EMIT_ALL,
		Scope: []string{web + "/Docs/Reports"}}
	encoded := &amrpipev1.JobSpec{WebUrl: web, Urls: []string{web + "/Shared%20Documents/"}, EmitPrincipals: true}
	rootWeb := &amrpipev1.JobSpec{WebUrl: host, Urls: []string{host + "/SampleDocLib"}}
	tests := []struct {
		name string
		spec *amrpipev1.JobSpec
		rec  *amrpipev1.Record
		want verdict
	}{
		{"folder target itself", folderJob, folderRec("/sites/hr/Docs/Reports"), publish},
		{"file below the target, other case", folderJob, fileRec("/SITES/hr/docs/reports/2024/q1.docx"), publish},
		{"the list of a folder target", folderJob, listRec("/sites/hr/Docs"), dropOutside},
		{"a sibling whose name extends the target's", folderJob, folderRec("/sites/hr/Docs/Reports-old"), dropOutside},
		{"principals of a job that lists them", folderJob, userRec(12), publish},
		{"package metadata", folderJob, settingsRec(), publish},
		{"role assignment web-relative, inside", folderJob, raRec("Docs/Reports/q1.docx"), publish},
		{"role assignment server-relative without slash", folderJob, raRec("sites/hr/Docs/Reports"), publish},
		{"role assignment of the list above", folderJob, raRec("Docs"), dropOutside},
		{"role assignment without a URL", folderJob, raRec(""), publish},
		{"probe: the probed library", probe, listRec("/sites/hr/Docs"), publish},
		{"probe: a direct file", probe, fileRec("/sites/hr/Docs/a.txt"), publish},
		{"probe: a direct file's item", probe, itemRec("/sites/hr/Docs/a.txt", "File"), publish},
		{"probe: a direct subfolder", probe, folderRec("/sites/hr/Docs/2019"), dropPolicy},
		{"probe: a direct subfolder's item", probe, itemRec("/sites/hr/Docs/2019", "Folder"), dropPolicy},
		{"probe: principals of a content job", probe, userRec(12), dropPrincipals},
		{"probe: role definitions of a content job", probe, roleRec(1073741829), dropPrincipals},
		{"security: users", security, userRec(12), publish},
		{"security: roles", security, roleRec(1073741829), publish},
		{"security: content", security, fileRec("/sites/hr/Docs/a.txt"), dropPolicy},
		{"security: role assignments", security, raRec("Docs"), dropPolicy},
		{"security: package metadata", security, settingsRec(), dropPolicy},
		{"incremental: in scope", incremental, fileRec("/sites/hr/Docs/Reports/a.txt"), publish},
		{"incremental: the list itself is out of scope", incremental, listRec("/sites/hr/Docs"), dropScope},
		{"incremental: another folder of the list", incremental, fileRec("/sites/hr/Docs/Other/a.txt"), dropScope},
		{"encoded job URL", encoded, fileRec("/sites/hr/Shared Documents/a.txt"), publish},
		{"root web, web-relative role assignment", rootWeb, raRec("SampleDocLib/33333333.txt"), publish},
		{"root web, other library", rootWeb, fileRec("/Other/a.txt"), dropOutside},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newPolicy(tt.spec).decide(tt.rec); got != tt.want {
				t.Errorf("decide = %s, want %s", got, tt.want)
			}
		})
	}
}

// node is a folder or list of a small tenant; files are its direct files.
type node struct {
	path  string
	list  bool
	files []string
	kids  []*node
}

// amr returns what an AMR job on n yields (pkg/sharepoint/sizing/tenant_test.go's model): the node, then
// its files and subfolders, recursively unless shallow, as the records pkg/sharepoint/manifest makes of it,
// plus the context AMR adds (the list of a folder target), the principals and package metadata.
func amr(n, list *node, shallow bool) []*amrpipev1.Record {
	// AMR lists the role assignment of the target's list in every job (the simulator does).
	out := []*amrpipev1.Record{settingsRec(), userRec(12), roleRec(1073741829), raRec(strings.TrimPrefix(list.path, "/sites/hr/"))}
	if n != list {
		out = append(out, listRec(list.path))
	}
	var walk func(x *node, depth int)
	walk = func(x *node, depth int) {
		if x.list {
			out = append(out, listRec(x.path))
		} else {
			out = append(out, folderRec(x.path), itemRec(x.path, "Folder"))
		}
		if shallow && depth == 1 {
			return
		}
		for _, f := range x.files {
			out = append(out, fileRec(x.path+"/"+f), itemRec(x.path+"/"+f, "File"))
		}
		for _, k := range x.kids {
			walk(k, depth+1)
		}
	}
	walk(n, 0)
	return out
}

// TestPolicyExactlyOnce runs a plan as the planner makes it for a large library (a security job,
// a probe of the library, one job per subfolder the probe found) through the Emit policies:
// every object must be published once, and the principals once.
func TestPolicyExactlyOnce(t *testing.T) {
	f1g := &node{path: "/sites/hr/Docs/F1/G", files: []string{"c.txt"}}
	f1 := &node{path: "/sites/hr/Docs/F1", files: []string{"b.txt"}, kids: []*node{f1g}}
	f2 := &node{path: "/sites/hr/Docs/F2", files: []string{"d.txt", "e.txt"}}
	docs := &node{path: "/sites/hr/Docs", list: true, files: []string{"a.txt"}, kids: []*node{f1, f2}}
	type job struct {
		spec    *amrpipev1.JobSpec
		target  *node
		shallow bool
	}
	spec := func(n *node, emit amrpipev1.Emit, principals bool) *amrpipev1.JobSpec {
		return &amrpipev1.JobSpec{WebUrl: web, Urls: []string{host + n.path}, Emit: emit, EmitPrincipals: principals}
	}
	plan := []job{
		{spec(docs, amrpipev1.Emit_EMIT_SECURITY_ONLY, true), docs, true},
		{spec(docs, amrpipev1.Emit_EMIT_PROBE, false), docs, true},
		{spec(f1, amrpipev1.Emit_EMIT_ALL, false), f1, false},
		{spec(f2, amrpipev1.Emit_EMIT_ALL, false), f2, false},
	}
	published := map[string]int{}
	for _, j := range plan {
		p := newPolicy(j.spec)
		for _, rec := range amr(j.target, docs, j.shallow) {
			if p.decide(rec) == publish {
				published[rec.GetObjectId()]++
			}
		}
	}
	want := []string{"user:12", "role:1073741829", "list:/sites/hr/Docs", "ra:Docs"}
	var walk func(x *node)
	walk = func(x *node) {
		if !x.list {
			want = append(want, "folder:"+x.path, "item:"+x.path)
		}
		for _, f := range x.files {
			want = append(want, "file:"+x.path+"/"+f, "item:"+x.path+"/"+f)
		}
		for _, k := range x.kids {
			walk(k)
		}
	}
	walk(docs)
	var bad []string
	for _, id := range want {
		if published[id] != 1 {
			bad = append(bad, fmt.Sprintf("%s published %d times", id, published[id]))
		}
		delete(published, id)
	}
	delete(published, "") // package metadata: every job publishes its own
	for id, n := range published {
		bad = append(bad, fmt.Sprintf("%s published %d times, want 0", id, n))
	}
	slices.Sort(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// TestPolicyManyRoots checks the root lookup of multi-URL jobs on the cases a prefix or a hash
// gets wrong: case, trailing slashes, percent-encoded URLs, a root that is a prefix of another
// name, nested roots (the first URL in the spec's order wins, which decides a probe's drops),
// Unicode case folding whose forms differ in length, bytes that are not UTF-8, the host root.
func TestPolicyManyRoots(t *testing.T) {
	multi := func(urls ...string) *amrpipev1.JobSpec {
		spec := &amrpipev1.JobSpec{WebUrl: web, Emit: amrpipev1.Emit_EMIT_ALL, Multi: true}
		for _, u := range urls {
			spec.Urls = append(spec.Urls, host+u)
		}
		return spec
	}
	tests := []struct {
		name string
		spec *amrpipev1.JobSpec
		path string
		want bool   // a folder at path is published
		root string // the root reported ("" when none)
	}{
		{"one of many, other case", multi("/sites/hr/Docs/A", "/sites/hr/Docs/B"), "/SITES/HR/docs/b/x.txt", true, "/sites/hr/Docs/B"},
		{"a root is a prefix of another name", multi("/sites/hr/Docs/a/b"), "/sites/hr/Docs/a/bc", false, ""},
		{"…and of a name below the other", multi("/sites/hr/Docs/a/b"), "/sites/hr/Docs/a/bc/x", false, ""},
		{"the root itself", multi("/sites/hr/Docs/a/b"), "/sites/hr/Docs/a/b", true, "/sites/hr/Docs/a/b"},
		{"trailing slash in the URL", multi("/sites/hr/Docs/a/"), "/sites/hr/Docs/a/x", true, "/sites/hr/Docs/a"},
		{"trailing slash in the path", multi("/sites/hr/Docs/a"), "/sites/hr/Docs/a/", true, "/sites/hr/Docs/a"},
		{"encoded URL, decoded path", multi("/sites/hr/Shared%20Documents/F%C3%A9"), "/sites/hr/shared documents/fé/x", true, "/sites/hr/Shared Documents/Fé"},
		{"encoded URL, encoded path", multi("/sites/hr/Shared%20Documents"), "/sites/hr/Shared%20Documents/x", true, "/sites/hr/Shared%20Documents"},
		{"a literal percent in a name", multi("/sites/hr/Docs/100%25"), "/sites/hr/Docs/100%/q.txt", true, "/sites/hr/Docs/100%"},
		{"nested roots: the first listed wins", multi("/sites/hr/Docs", "/sites/hr/Docs/Sub"), "/sites/hr/Docs/Sub", true, "/sites/hr/Docs"},
		{"nested roots in the other order", multi("/sites/hr/Docs/Sub", "/sites/hr/Docs"), "/sites/hr/Docs/Sub", true, "/sites/hr/Docs/Sub"},
		{"Kelvin sign folds to k", multi("/sites/hr/\u212Aey"), "/sites/hr/key/x", false, ""}, // the Kelvin sign is 3 bytes, k 1: the byte prefixes differ
		{"Kelvin sign in both", multi("/sites/hr/\u212Aey"), "/sites/hr/\u212AEY/x", true, "/sites/hr/\u212Aey"},
		{"long s and S", multi("/sites/hr/\u017Fx"), "/sites/hr/\u017FX/y", true, "/sites/hr/\u017Fx"},
		{"Greek sigma forms", multi("/sites/hr/\u03A3a"), "/sites/hr/\u03C2a/y", true, "/sites/hr/\u03A3a"},
		{"invalid UTF-8 reads as U+FFFD", multi("/sites/hr/\xff"), "/sites/hr/\xfe/y", true, "/sites/hr/\xff"},
		{"host root", multi("/"), "/anything/at/all", true, "/"},
		{"no leading slash never under the host root", multi("/"), "relative/x", false, ""},
		{"probe: a folder below the first root is dropped", probeOf("/sites/hr/Docs", "/sites/hr/Docs/Sub"), "/sites/hr/Docs/Sub", false, "/sites/hr/Docs"},
		{"probe: the same folder is the first root", probeOf("/sites/hr/Docs/Sub", "/sites/hr/Docs"), "/sites/hr/Docs/Sub", true, "/sites/hr/Docs/Sub"},
		{"probe: the root folder is kept", probeOf("/sites/hr/Docs"), "/sites/hr/Docs", true, "/sites/hr/Docs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPolicy(tt.spec)
			root, ok := p.root(tt.path)
			if ok != (tt.root != "") || root != tt.root {
				t.Errorf("root(%q) = %q, %t; want %q", tt.path, root, ok, tt.root)
			}
			// Through the index too (a job this small scans its URLs).
			lr, lok := linearRoot(p.roots, tt.path)
			if ir, iok := p.rootIndex.indexed(tt.path); iok != lok || ir != lr {
				t.Errorf("the index says %d, %t; the linear scan %d, %t", ir, iok, lr, lok)
			}
			if got := p.decide(folderRec(tt.path)) == publish; got != tt.want {
				t.Errorf("decide(folder %q) published = %t, want %t", tt.path, got, tt.want)
			}
		})
	}
}

func probeOf(paths ...string) *amrpipev1.JobSpec {
	spec := &amrpipev1.JobSpec{WebUrl: web, Emit: amrpipev1.Emit_EMIT_PROBE, Probe: true}
	for _, u := range paths {
		spec.Urls = append(spec.Urls, host+u)
	}
	return spec
}

// linearRoot is the lookup the index replaced, the reference it must agree with: the first
// listed path that path is at or below.
func linearRoot(paths []string, path string) (int, bool) {
	for i, r := range paths {
		if under(path, r) {
			return i, true
		}
	}
	return -1, false
}

// trickyPath builds a path of 0-4 segments from pieces chosen to collide under case folding,
// share prefixes, or carry bytes that are not UTF-8.
func trickyPath(r *rand.Rand, lead bool) string {
	pieces := []string{"a", "A", "ab", "aB", "b", "k", "K", "\u212A", "s", "S", "\u017F", "\u03A3", "\u03C3", "\u03C2",
		"é", "É", "%20", " ", "\xff", "\xc3", "", "/"}
	var sb strings.Builder
	if lead || r.IntN(8) > 0 {
		sb.WriteByte('/')
	}
	for i, n := 0, r.IntN(5); i < n; i++ {
		if i > 0 {
			sb.WriteByte('/')
		}
		for j, m := 0, 1+r.IntN(3); j < m; j++ {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
	}
	return sb.String()
}

// TestPathIndexAgreesWithLinearScan compares the index with the linear scan on random roots and
// paths built from confusable pieces, including paths below the roots.
func TestPathIndexAgreesWithLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for round := range 3000 {
		roots := make([]string, 1+r.IntN(2*scanBelow))
		for i := range roots {
			roots[i] = urlPath(trickyPath(r, true))
		}
		x := newPathIndex(roots)
		for range 20 {
			path := trickyPath(r, false)
			if r.IntN(2) == 0 { // below a root, in another case
				path = strings.ToUpper(roots[r.IntN(len(roots))]) + path
			}
			gi, gok := x.indexed(path)
			wi, wok := linearRoot(roots, path)
			if gi != wi || gok != wok {
				t.Fatalf("round %d: roots %q, path %q: index %d %t, linear %d %t", round, roots, path, gi, gok, wi, wok)
			}
		}
	}
}

func FuzzPathIndex(f *testing.F) {
	f.Add("/sites/hr/Docs/a/b", "/sites/hr/Docs/A", "/SITES/hr/docs/a/bc")
	f.Add("/\u212Aey", "/k", "/key/\u212AEY")
	f.Add("/", "/a%20b", "/a b/c")
	f.Fuzz(func(t *testing.T, r1, r2, path string) {
		roots := []string{urlPath(r1), urlPath(r2)}
		gi, gok := newPathIndex(roots).indexed(path)
		wi, wok := linearRoot(roots, path)
		if gi != wi || gok != wok {
			t.Fatalf("roots %q, path %q: index %d %t, linear %d %t", roots, path, gi, gok, wi, wok)
		}
	})
}
