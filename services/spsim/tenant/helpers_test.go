package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func newTenant(t testing.TB, p Profile) *Tenant {
	t.Helper()
	tn, err := New(p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tn
}

func resolve(t testing.TB, tn *Tenant, url string) Target {
	t.Helper()
	tg, err := tn.Resolve(url)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", url, err)
	}
	return tg
}

func collect(t testing.TB, tn *Tenant, opts ReadOptions, urls ...string) []*Object {
	t.Helper()
	var targets []Target
	for _, u := range urls {
		targets = append(targets, resolve(t, tn, u))
	}
	var out []*Object
	if err := tn.Walk(context.Background(), targets, opts, func(o *Object) error {
		out = append(out, o)
		return nil
	}); err != nil {
		t.Fatalf("Walk(%v): %v", urls, err)
	}
	return out
}

// countWalk walks one URL and checks Count agrees with the number of objects yielded.
func countWalk(t testing.TB, tn *Tenant, url string, opts ReadOptions) int64 {
	t.Helper()
	tg := resolve(t, tn, url)
	var n int64
	if err := tn.Walk(context.Background(), []Target{tg}, opts, func(*Object) error { n++; return nil }); err != nil {
		t.Fatalf("Walk(%s): %v", url, err)
	}
	c, err := tn.Count(context.Background(), []Target{tg}, opts)
	if err != nil {
		t.Fatalf("Count(%s): %v", url, err)
	}
	if c != n {
		t.Errorf("Count(%s, %+v) = %d, Walk yielded %d", url, opts, c, n)
	}
	return n
}

// fingerprint hashes every field of every object, in order.
func fingerprint(objs []*Object) string {
	h := sha256.New()
	for _, o := range objs {
		fmt.Fprintf(h, "%+v\n", *o)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// allLists is every list root URL of a tenant, subwebs included.
func allLists(t testing.TB, tn *Tenant) []List {
	t.Helper()
	var out []List
	var web func(url string)
	web = func(url string) {
		ls, err := tn.Lists(url)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ls...)
		subs, err := tn.Subwebs(url)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			web(s.ServerRelativeURL)
		}
	}
	for _, s := range tn.Sites() {
		web(s.ServerRelativeURL)
	}
	return out
}

// checkTotals verifies, within one walk of a list, that every folder's (and the list's)
// SMTotalFileCount and ItemCount match the objects yielded below it, and returns the number of
// folders below the list root (SharePoint reports no such count; List.ItemCount includes them).
func checkTotals(t testing.TB, objs []*Object) (folders int64) {
	t.Helper()
	files, direct := map[string]int64{}, map[string]int64{}
	parent := func(u string) string { return u[:strings.LastIndexByte(u, '/')] }
	for _, o := range objs {
		if o.IsDeleted || o.Type != TypeFile && !(o.Type == TypeListItem && o.DocType == "") && o.Type != TypeFolder {
			continue
		}
		direct[strings.ToLower(parent(o.ServerURL))]++
		if o.Type == TypeFolder {
			folders++
			continue
		}
		for u := parent(o.ServerURL); strings.Count(u, "/") > 1; u = parent(u) {
			files[strings.ToLower(u)]++
		}
	}
	checked := 0
	for _, o := range objs {
		if o.Type != TypeFolder && o.Type != TypeList && o.Type != TypeDocumentLibrary {
			continue
		}
		u := strings.ToLower(o.ServerURL)
		if o.SMTotalFileCount != files[u] || int64(o.ItemCount) != direct[u] {
			t.Errorf("%s %s: SMTotalFileCount %d, ItemCount %d; the walk yields %d files, %d direct children",
				o.Type, o.ServerURL, o.SMTotalFileCount, o.ItemCount, files[u], direct[u])
		}
		checked++
	}
	if checked == 0 {
		t.Error("no folder or list object to check")
	}
	return folders
}
