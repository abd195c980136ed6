package inventory_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// Record edits for the composition cases.
func deleted(r *amrpipev1.Record) { r.SpObject.IsDeleted = true }
func size200(r *amrpipev1.Record) { r.GetFile().FileSize = 200 }
func inFolder(id string) func(*amrpipev1.Record) {
	return func(r *amrpipev1.Record) { r.GetFile().ParentId = id }
}
func edits(fs ...func(*amrpipev1.Record)) func(*amrpipev1.Record) {
	return func(r *amrpipev1.Record) {
		for _, f := range fs {
			f(r)
		}
	}
}

// TestComposedChangeSets: the change set of passes further apart than one (from an ancestor in
// to's chain of bases) composes the stored change sets of the passes in between, per object and in
// order, as docs/inventory.md's table says. One object per case goes through four passes (a full
// one, then three incremental ones) and the change set from the first to the last must hold
// exactly the case's entries.
func TestComposedChangeSets(t *testing.T) {
	const f1, f2 = "/s/d/", "/s/d/b/"
	file := func(id, url string, mod func(*amrpipev1.Record)) *amrpipev1.Record {
		return rec("SPFile", id, url, mod)
	}
	cases := []struct {
		name string
		// the object's records in passes 1 to 4 (nil: not in that pass)
		passes [4][]*amrpipev1.Record
		want   []string // kind type id url [fields] [prev_url]
	}{
		{"untouched: nothing", [4][]*amrpipev1.Record{{file("same", f1+"same.docx", nil)}}, nil},
		{"added then changed: added", [4][]*amrpipev1.Record{nil, {file("add-chg", f1+"add-chg.docx", nil)}, {file("add-chg", f1+"add-chg.docx", size200)}},
			[]string{"added SPFile add-chg /s/d/add-chg.docx"}},
		{"added then moved: added at the new URL", [4][]*amrpipev1.Record{nil, {file("add-mv", f1+"add-mv.docx", nil)}, nil, {file("add-mv", f2+"add-mv.docx", inFolder("folder-2"))}},
			[]string{"added SPFile add-mv /s/d/b/add-mv.docx"}},
		{"added then deleted: nothing", [4][]*amrpipev1.Record{nil, {file("add-del", f1+"add-del.docx", nil)}, {file("add-del", f1+"add-del.docx", deleted)}}, nil},
		{"added, deleted, added: added", [4][]*amrpipev1.Record{nil, {file("add-del-add", f1+"ada.docx", nil)}, {file("add-del-add", f1+"ada.docx", deleted)},
			{file("add-del-add", f1+"ada.docx", nil)}}, []string{"added SPFile add-del-add /s/d/ada.docx"}},
		{"changed then changed: changed with the union of the fields", [4][]*amrpipev1.Record{{file("chg-chg", f1+"cc.docx", nil)}, {file("chg-chg", f1+"cc.docx", size200)},
			nil, {file("chg-chg", f1+"cc.docx", edits(size200, func(r *amrpipev1.Record) { r.GetFile().Version, r.GetFile().ModifiedBy = "2.0", 9 }))}},
			[]string{"changed SPFile chg-chg /s/d/cc.docx size,editor,version"}},
		{"changed then deleted: deleted", [4][]*amrpipev1.Record{{file("chg-del", f1+"cd.docx", nil)}, {file("chg-del", f1+"cd.docx", size200)},
			{file("chg-del", f1+"cd.docx", edits(size200, deleted))}}, []string{"deleted SPFile chg-del /s/d/cd.docx"}},
		{"deleted: deleted", [4][]*amrpipev1.Record{{file("del", f1+"del.docx", nil)}, nil, nil, {file("del", f1+"del.docx", deleted)}},
			[]string{"deleted SPFile del /s/d/del.docx"}},
		{"deleted then added: changed, without fields", [4][]*amrpipev1.Record{{file("del-add", f1+"da.docx", nil)}, {file("del-add", f1+"da.docx", deleted)},
			{file("del-add", f1+"da.docx", size200)}}, []string{"changed SPFile del-add /s/d/da.docx"}},
		{"deleted then added elsewhere: changed and moved", [4][]*amrpipev1.Record{{file("del-add-mv", f1+"dam.docx", nil)}, {file("del-add-mv", f1+"dam.docx", deleted)},
			nil, {file("del-add-mv", f2+"dam.docx", inFolder("folder-2"))}},
			[]string{"changed SPFile del-add-mv /s/d/b/dam.docx", "moved SPFile del-add-mv /s/d/b/dam.docx url /s/d/dam.docx"}},
		{"moved then moved: moved with the first prev_url", [4][]*amrpipev1.Record{{file("mv-mv", f1+"mm.docx", nil)}, {file("mv-mv", f2+"mm.docx", inFolder("folder-2"))},
			{file("mv-mv", f2+"mm-renamed.docx", inFolder("folder-2"))}},
			[]string{"moved SPFile mv-mv /s/d/b/mm-renamed.docx url,name,parent_id /s/d/mm.docx"}},
		{"moved and moved back: nothing", [4][]*amrpipev1.Record{{file("mv-back", f1+"mb.docx", nil)}, {file("mv-back", f2+"mb.docx", inFolder("folder-2"))},
			nil, {file("mv-back", f1+"mb.docx", nil)}}, nil},
		{"moved then changed: moved and changed", [4][]*amrpipev1.Record{{file("mv-chg", f1+"mc.docx", nil)}, {file("mv-chg", f1+"mc-renamed.docx", nil)},
			{file("mv-chg", f1+"mc-renamed.docx", size200)}},
			[]string{"changed SPFile mv-chg /s/d/mc-renamed.docx size", "moved SPFile mv-chg /s/d/mc-renamed.docx url,name /s/d/mc.docx"}},
		{"moved then deleted: deleted", [4][]*amrpipev1.Record{{file("mv-del", f1+"md.docx", nil)}, {file("mv-del", f2+"md.docx", inFolder("folder-2"))},
			{file("mv-del", f2+"md.docx", edits(inFolder("folder-2"), deleted))}}, []string{"deleted SPFile mv-del /s/d/b/md.docx"}},
		{"permissions then permissions: permissions with the union of the fields", [4][]*amrpipev1.Record{
			{file("perm-perm", f1+"pp.docx", nil), roleAssignment("scope-pp", "perm-perm", [2]int64{1073741826, 7})},
			{file("perm-perm", f1+"pp.docx", nil), roleAssignment("scope-pp", "perm-perm", [2]int64{1073741826, 7}, [2]int64{1073741827, 8})},
			{file("perm-perm", f1+"pp.docx", nil)}},
			[]string{"permissions SPFile perm-perm /s/d/pp.docx unique_permissions,role_assignments"}},
		{"changed then permissions: changed and permissions", [4][]*amrpipev1.Record{
			{file("chg-perm", f1+"cp.docx", nil), roleAssignment("scope-cp", "chg-perm", [2]int64{1073741826, 7})},
			{file("chg-perm", f1+"cp.docx", size200), roleAssignment("scope-cp", "chg-perm", [2]int64{1073741826, 7})},
			nil, {file("chg-perm", f1+"cp.docx", size200)}},
			[]string{"changed SPFile chg-perm /s/d/cp.docx size", "permissions SPFile chg-perm /s/d/cp.docx unique_permissions"}},
		{"added in the last pass: added", [4][]*amrpipev1.Record{nil, nil, nil, {rec("SPListItem", "late", "/s/l/late", nil)}},
			[]string{"added SPListItem late /s/l/late"}},
	}
	forEachBackend(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		var ids [4]int64
		for n := range 4 {
			kind := inventory.Incremental
			if n == 0 {
				kind = inventory.Full
			}
			p := begin(t, s, kind)
			var recs []*amrpipev1.Record
			for _, c := range cases {
				recs = append(recs, c.passes[n]...)
			}
			ingest(t, p, recs)
			end(t, p)
			ids[n] = p.Info().ID
		}
		cs, err := s.Changes(ctx, ids[0], ids[3])
		if err != nil {
			t.Fatal(err)
		}
		if cs.From != ids[0] || cs.To != ids[3] || cs.Tenant != testTenant {
			t.Errorf("change set %s %d -> %d, want %s %d -> %d", cs.Tenant, cs.From, cs.To, testTenant, ids[0], ids[3])
		}
		got := map[string][]string{}
		for _, c := range cs.Changes {
			line := strings.Join(slices.DeleteFunc([]string{string(c.Kind), c.ObjectType, c.ObjectID, c.URL, strings.Join(c.Fields, ","), c.PrevURL},
				func(s string) bool { return s == "" }), " ")
			got[c.ObjectID] = append(got[c.ObjectID], line)
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var id string
				for _, p := range c.passes {
					if len(p) > 0 {
						id = p[0].GetObjectId()
						break
					}
				}
				if g := got[id]; !slices.Equal(g, c.want) {
					t.Errorf("composed entries of %s:\n got %q\nwant %q", id, g, c.want)
				}
				delete(got, id)
			})
		}
		if len(got) != 0 {
			t.Errorf("entries of no case: %q", got)
		}
		// A from that is to's base reads the stored change set, as before: the same as from 0.
		for n := 1; n < 4; n++ {
			stored, err := s.Changes(ctx, 0, ids[n])
			if err != nil {
				t.Fatal(err)
			}
			byBase, err := s.Changes(ctx, ids[n-1], ids[n])
			if err != nil {
				t.Fatal(err)
			}
			if stored.From != ids[n-1] || !slices.EqualFunc(stored.Changes, byBase.Changes, sameChange) {
				t.Errorf("pass %d against its base: %+v and %+v", ids[n], stored, byBase)
			}
		}
		// Composing consecutive passes two at a time agrees with composing them at once.
		mid, err := s.Changes(ctx, ids[1], ids[3])
		if err != nil || mid.From != ids[1] || len(mid.Changes) == 0 {
			t.Errorf("passes %d to %d: %v, %+v", ids[1], ids[3], err, mid)
		}
	})
}

func sameChange(a, b inventory.Change) bool {
	return a.Kind == b.Kind && a.ObjectType == b.ObjectType && a.ObjectID == b.ObjectID && a.URL == b.URL && a.PrevURL == b.PrevURL &&
		slices.Equal(a.Fields, b.Fields)
}

// TestComposedChangeSetEqualsTheSimulatorsChanges: a full export of the small tenant, then two
// rounds of the simulator's changes each followed by an incremental export; the change set from the
// first pass to the third is exactly the net effect of both rounds per object (a file's list item
// beside its file): added then deleted is nothing, added then updated is added, updated then
// deleted is deleted. (The combinations the simulator's rounds do not make are TestComposedChangeSets' cases.)
func TestComposedChangeSetEqualsTheSimulatorsChanges(t *testing.T) {
	ctx := context.Background()
	tn := smallTenant(t)
	target, err := tn.Resolve(smallTargets()[0])
	if err != nil {
		t.Fatal(err)
	}
	recs := [][]*amrpipev1.Record{}
	var rounds [][]tenant.Change
	for n := range 3 {
		opts := fullOpts()
		if n > 0 {
			opts.StartChangeToken = tn.CurrentChangeToken(target)
			tn.Advance(time.Hour)
			rounds = append(rounds, tn.Mutate(120))
		}
		r, err := testenv.ExportRecords(ctx, tn, fmt.Sprintf("job-%d", n+1), smallTargets(), opts)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	want := netChanges(t, rounds, recs...)
	forEachBackend(t, func(t *testing.T, s *inventory.Store) {
		var ids []int64
		for n, r := range recs {
			kind := inventory.Incremental
			if n == 0 {
				kind = inventory.Full
			}
			p := begin(t, s, kind)
			ingest(t, p, r)
			end(t, p)
			ids = append(ids, p.Info().ID)
		}
		cs, err := s.Changes(ctx, ids[0], ids[2])
		if err != nil {
			t.Fatal(err)
		}
		checkSimulatorChanges(t, "composed change set", cs, want)
	})
}

// netChanges is the change set rounds of the simulator's changes make from before the first to
// after the last: per object (a file and its list item), added when its first change adds it and
// it is not deleted at the end, nothing when it is, deleted when it existed and is deleted at the
// end, changed otherwise.
func netChanges(t *testing.T, rounds [][]tenant.Change, recs ...[]*amrpipev1.Record) []string {
	t.Helper()
	itemOf := map[string]string{}
	for _, rs := range recs {
		for _, r := range rs {
			if id := r.GetListItem().GetDocId(); id != "" {
				itemOf[id] = r.GetObjectId()
			}
		}
	}
	type life struct{ added, deleted bool }
	net := map[testenv.Object]*life{}
	var order []testenv.Object
	adds, deletes := 0, 0
	for _, round := range rounds {
		for _, c := range round {
			for _, o := range touched(t, c, itemOf) {
				l := net[o]
				if l == nil {
					l = &life{added: c.Kind == tenant.ChangeAdd}
					net[o] = l
					order = append(order, o)
				}
				l.deleted = c.Kind == tenant.ChangeDelete
			}
			switch c.Kind {
			case tenant.ChangeAdd:
				adds++
			case tenant.ChangeDelete:
				deletes++
			}
		}
	}
	if adds == 0 || deletes == 0 {
		t.Fatalf("the simulator made %d additions and %d deletions; the test needs both", adds, deletes)
	}
	var out []string
	vanished := 0
	for _, o := range order {
		l := net[o]
		kind := inventory.Changed
		switch {
		case l.added && l.deleted:
			vanished++
			continue
		case l.added:
			kind = inventory.Added
		case l.deleted:
			kind = inventory.Deleted
		}
		out = append(out, string(kind)+" "+o.Type+" "+o.ID)
	}
	t.Logf("%d rounds: %d additions, %d deletions; %d objects net, %d added then deleted", len(rounds), adds, deletes, len(out), vanished)
	slices.Sort(out)
	return out
}
