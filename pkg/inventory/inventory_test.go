package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

const testTenant = "contoso.sharepoint.com"

func smallTargets() []string { return testenv.SmallTargets(func(s string) string { return s }) }

func fullOpts() tenant.ReadOptions {
	return tenant.ReadOptions{IncludeVersions: true, IncludePermission: true, IncludeSecurity: true}
}

// fullRead is the records of a full read (fullOpts) of the small site's targets in tn, as job
// jobID exports them.
func fullRead(t *testing.T, tn *tenant.Tenant, jobID string) []*amrpipev1.Record {
	t.Helper()
	recs, err := testenv.ExportRecords(context.Background(), tn, jobID, smallTargets(), fullOpts())
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func begin(t *testing.T, s *inventory.Store, kind inventory.Kind) *inventory.Pass {
	t.Helper()
	p, err := s.BeginPass(context.Background(), inventory.PassInfo{Tenant: testTenant, Scope: "/sites/small", PlanIDs: []string{"plan-1"}, Kind: kind, Permissions: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ingest(t *testing.T, p *inventory.Pass, recs []*amrpipev1.Record) {
	t.Helper()
	// In batches, as the sink receives them.
	for off := 0; off < len(recs); off += 700 {
		if err := p.Ingest(context.Background(), recs[off:min(off+700, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
}

func end(t *testing.T, p *inventory.Pass) {
	t.Helper()
	if err := p.End(context.Background(), true); err != nil {
		t.Fatal(err)
	}
}

func objects(t *testing.T, s *inventory.Store, f inventory.Filter) map[testenv.Object]*inventory.Object {
	t.Helper()
	out := map[testenv.Object]*inventory.Object{}
	err := s.Objects(context.Background(), testTenant, f, func(o *inventory.Object) error {
		out[testenv.Object{Type: o.Type, ID: o.ID}] = o
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFullPassHoldsTheTenantOnceWhateverTheRedeliveries ingests a full export of the small
// tenant, then every record again (a redelivery) and in reverse order within the same pass, then
// a second full pass of the same state: the inventory holds exactly the tenant's content objects
// (the ground truth), their logins resolve, and the second pass changes nothing.
func TestFullPassHoldsTheTenantOnceWhateverTheRedeliveries(t *testing.T) {
	ctx := context.Background()
	tn := smallTenant(t)
	truth, err := testenv.Truth(ctx, tn, smallTargets(), fullOpts(), nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := fullRead(t, tn, "job-1")
	forEachBackend(t, func(t *testing.T, s *inventory.Store) {
		p := begin(t, s, inventory.Full)
		ingest(t, p, recs)
		ingest(t, p, recs)
		rev := slices.Clone(recs)
		slices.Reverse(rev)
		ingest(t, p, rev)
		end(t, p)
		got := objects(t, s, inventory.Filter{})
		if len(got) != len(truth) {
			t.Errorf("inventory holds %d objects, the tenant %d", len(got), len(truth))
		}
		unique := 0
		for o := range truth {
			g := got[o]
			if g == nil {
				t.Fatalf("object %v missing", o)
			}
			if g.Type != "SPList" && g.Type != "SPDocumentLibrary" && (g.AuthorLogin == "" || g.EditorLogin == "") {
				t.Fatalf("object %v: author %d editor %d have no login", o, g.Author, g.Editor)
			}
			if g.UniquePermissions {
				unique++
			}
		}
		if unique == 0 {
			t.Error("no object has unique permissions; the small tenant has some")
		}
		var ae *inventory.ArgError
		if _, err := s.Changes(ctx, 0, 0); !errors.As(err, &ae) || ae.Arg != "to" {
			t.Errorf("change set of the first pass: %v, want an *ArgError naming to", err)
		}

		p2 := begin(t, s, inventory.Full)
		ingest(t, p2, recs)
		end(t, p2)
		cs, err := s.Changes(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if cs.From != p.Info().ID || cs.To != p2.Info().ID || len(cs.Changes) != 0 {
			t.Errorf("second pass of the same state: change set %d->%d with %d changes %v", cs.From, cs.To, len(cs.Changes), first(cs.Changes))
		}
		passes, err := s.Passes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(passes) != 2 || !passes[0].Complete || passes[1].Base != passes[0].ID || passes[1].Counts.Records != int64(len(recs)) {
			t.Errorf("passes %+v", passes)
		}
	})
}

func first(cs []inventory.Change) []inventory.Change { return cs[:min(5, len(cs))] }

// TestBackendsHoldTheSameObjects writes one first pass into each backend: half of the small
// tenant's records, then the rest with the first half's last 100 delivered again. PostgreSQL copies a pass's rows straight into the objects table until one names an
// object already there, and upserts from then on; SQLite upserts every row. Both must hold the
// same objects, field for field, after that pass and after a second one.
func TestBackendsHoldTheSameObjects(t *testing.T) {
	recs := fullRead(t, smallTenant(t), "job-1")
	held := map[string][2]map[testenv.Object]*inventory.Object{}
	forEachBackend(t, func(t *testing.T, s *inventory.Store) {
		p := begin(t, s, inventory.Full)
		half := len(recs) / 2
		ingest(t, p, recs[:half])
		ingest(t, p, recs[half-100:])
		end(t, p)
		first := objects(t, s, inventory.Filter{})
		p2 := begin(t, s, inventory.Full)
		ingest(t, p2, recs)
		end(t, p2)
		held[s.Backend()] = [2]map[testenv.Object]*inventory.Object{first, objects(t, s, inventory.Filter{})}
	})
	lite, pg := held["sqlite"], held["postgres"]
	for pass := range 2 {
		if len(lite[pass]) == 0 || len(lite[pass]) != len(pg[pass]) {
			t.Fatalf("pass %d: sqlite holds %d objects, postgres %d", pass+1, len(lite[pass]), len(pg[pass]))
		}
		for k, want := range lite[pass] {
			if got := pg[pass][k]; !reflect.DeepEqual(got, want) {
				t.Errorf("pass %d, object %v:\npostgres %+v\nsqlite   %+v", pass+1, k, got, want)
			}
		}
	}
}

// TestBatchOfTwoJobs ingests the small tenant's records as one batch in which every other record
// comes from a second job (a sink's group can hold batches of several jobs): each object keeps the
// job of its own record. SQLite binds a value that every row of a statement shares once, so a
// batch whose rows differ in such a value must not take one row's value for all.
func TestBatchOfTwoJobs(t *testing.T) {
	recs := fullRead(t, smallTenant(t), "job-1")
	want := map[testenv.Object]string{}
	for i, r := range recs {
		if i%2 == 1 {
			r.JobId = "job-2"
		}
		want[testenv.Object{Type: r.GetObjectType(), ID: r.GetObjectId()}] = r.GetJobId()
	}
	forEachBackend(t, func(t *testing.T, s *inventory.Store) {
		p := begin(t, s, inventory.Full)
		if err := p.Ingest(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
		end(t, p)
		got := objects(t, s, inventory.Filter{})
		if len(got) < 100 {
			t.Fatalf("%d objects, want the small tenant's", len(got))
		}
		jobs := map[string]int{}
		for k, o := range got {
			jobs[o.LastJob]++
			if o.LastJob != want[k] {
				t.Errorf("%v: last job %q, want %q", k, o.LastJob, want[k])
			}
		}
		if jobs["job-1"] == 0 || jobs["job-2"] == 0 {
			t.Errorf("objects by last job %v, want both jobs", jobs)
		}
	})
}

// smallTenant is the simulator's small profile, the tenant these tests export.
func smallTenant(t *testing.T) *tenant.Tenant {
	t.Helper()
	tn, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// TestChangeSetEqualsTheSimulatorsChanges exports the small tenant, lets the simulator make
// changes (Tenant.Mutate returns exactly what it did), exports again (incrementally from the first
// export's change token, or in full) and checks that the second pass's change set is exactly the
// simulator's changes: each changed object once with its net effect (an update then a delete is a
// delete), a file's list item beside its file, nothing else (no moves, no permission changes, no
// folder or list touched).
func TestChangeSetEqualsTheSimulatorsChanges(t *testing.T) {
	for _, second := range []inventory.Kind{inventory.Incremental, inventory.Full} {
		t.Run(string(second), func(t *testing.T) {
			ctx := context.Background()
			tn := smallTenant(t)
			recs1 := fullRead(t, tn, "job-1")
			target, err := tn.Resolve(smallTargets()[0])
			if err != nil {
				t.Fatal(err)
			}
			token := tn.CurrentChangeToken(target)
			tn.Advance(time.Hour)
			changes := tn.Mutate(120)
			opts := fullOpts()
			if second == inventory.Incremental {
				opts.StartChangeToken = token
			}
			recs2, err := testenv.ExportRecords(ctx, tn, "job-2", smallTargets(), opts)
			if err != nil {
				t.Fatal(err)
			}
			want := expectedChanges(t, changes, recs1, recs2)
			forEachBackend(t, func(t *testing.T, s *inventory.Store) {
				p1 := begin(t, s, inventory.Full)
				ingest(t, p1, recs1)
				end(t, p1)
				p2 := begin(t, s, second)
				ingest(t, p2, recs2)
				end(t, p2)
				cs, err := s.Changes(ctx, p1.Info().ID, p2.Info().ID)
				if err != nil {
					t.Fatal(err)
				}
				checkSimulatorChanges(t, "change set", cs, want)
			})
		})
	}
}

// expectedChanges is the change set the simulator's changes make: per object the net effect, and
// touched are the objects a simulator change shows up as in the inventory: the object, and for a
// file its list item too (itemOf maps a file's id to its list item's).
func touched(t *testing.T, c tenant.Change, itemOf map[string]string) []testenv.Object {
	t.Helper()
	objs := []testenv.Object{{Type: string(c.ObjectType), ID: c.ObjectID}}
	if c.ObjectType == tenant.TypeFile {
		item, ok := itemOf[c.ObjectID]
		if !ok {
			t.Fatalf("no list item for file %s in any export", c.ObjectID)
		}
		if c.ItemID != item {
			t.Fatalf("the simulator names %s the list item of file %s; its exports name %s", c.ItemID, c.ObjectID, item)
		}
		objs = append(objs, testenv.Object{Type: string(tenant.TypeListItem), ID: item})
	}
	return objs
}

// checkSimulatorChanges checks that a change set holds exactly want ("kind type id", sorted),
// and that every changed object lists a new version (a simulator update always makes one).
func checkSimulatorChanges(t *testing.T, what string, cs *inventory.ChangeSet, want []string) {
	t.Helper()
	var got []string
	for _, c := range cs.Changes {
		got = append(got, string(c.Kind)+" "+c.ObjectType+" "+c.ObjectID)
		if c.Kind == inventory.Changed && !slices.Contains(c.Fields, "version") {
			t.Errorf("%s %s changed %v: a simulator update is a new version", c.ObjectType, c.ObjectID, c.Fields)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s (%d) differs from the simulator's changes (%d):\n%s", what, len(got), len(want), setDiff(got, want))
	}
}

// for a file its list item (DocType File, found by DocId in either export) alongside.
func expectedChanges(t *testing.T, changes []tenant.Change, recs ...[]*amrpipev1.Record) []string {
	t.Helper()
	if len(changes) < 50 {
		t.Fatalf("the simulator made only %d changes", len(changes))
	}
	itemOf := map[string]string{}
	for _, rs := range recs {
		for _, r := range rs {
			if id := r.GetListItem().GetDocId(); id != "" {
				itemOf[id] = r.GetObjectId()
			}
		}
	}
	kinds := map[tenant.ChangeKind]inventory.ChangeKind{tenant.ChangeAdd: inventory.Added, tenant.ChangeUpdate: inventory.Changed, tenant.ChangeDelete: inventory.Deleted}
	net := map[testenv.Object]inventory.ChangeKind{}
	for _, c := range changes {
		for _, o := range touched(t, c, itemOf) {
			if net[o] != inventory.Added { // an added object stays added, whatever happens next
				net[o] = kinds[c.Kind]
			}
		}
	}
	var out []string
	for o, k := range net {
		out = append(out, string(k)+" "+o.Type+" "+o.ID)
	}
	slices.Sort(out)
	return out
}

func setDiff(got, want []string) string {
	var b strings.Builder
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&b, "  unexpected: %s\n", g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			fmt.Fprintf(&b, "  missing:    %s\n", w)
		}
	}
	return b.String()
}

// rec builds a content record the way the parser does (header and body).
func rec(typ, id, url string, mod func(*amrpipev1.Record)) *amrpipev1.Record {
	name := url[strings.LastIndexByte(url, '/')+1:]
	r := &amrpipev1.Record{JobId: "job", SourceFile: "Manifest.xml", ObjectId: id, ObjectType: typ,
		SpObject: &amrpipev1.SPObjectHeader{Id: id, ObjectType: typ, ServerRelativeUrl: url, Name: name, ParentId: "folder-1"}}
	switch typ {
	case "SPFile":
		r.Body = &amrpipev1.Record_File{File: &amrpipev1.File{Id: id, Name: name, ServerRelativeUrl: url, ParentId: "folder-1", ListId: "list-1",
			FileSize: 100, Version: "1.0", Author: 7, ModifiedBy: 7, TimeLastModified: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}}
	case "SPListItem":
		r.Body = &amrpipev1.Record_ListItem{ListItem: &amrpipev1.ListItem{Id: id, Name: name, ServerRelativeUrl: url, ParentFolderId: "folder-1",
			ParentListId: "list-1", Version: "1.0", Author: 7, ModifiedBy: 7}}
	}
	if mod != nil {
		mod(r)
	}
	return r
}

func roleAssignment(scope, objectID string, grants ...[2]int64) *amrpipev1.Record {
	ra := &amrpipev1.RoleAssignment{ScopeId: scope, ObjectId: objectID, ObjectType: 2}
	for _, g := range grants {
		ra.Assignments = append(ra.Assignments, &amrpipev1.Assignment{RoleId: g[0], PrincipalId: g[1]})
	}
	return &amrpipev1.Record{JobId: "job", SourceFile: "Manifest.xml", ObjectId: scope, ObjectType: "RoleAssignment",
		Body: &amrpipev1.Record_RoleAssignment{RoleAssignment: ra}}
}

// TestChangeKinds checks each kind of change on hand-made passes: an edit names its fields, a
// rename and a move are moves (with the old URL) and not edits, a lost unique permission, changed
// grants and new unique permissions are permission changes, a deletion of a known object is a
// deletion and of an unknown one nothing, and a full pass deletes what it did not see.
func TestChangeKinds(t *testing.T) {
	p1 := []*amrpipev1.Record{
		rec("SPFile", "edit", "/s/d/edit.docx", nil),
		rec("SPFile", "rename", "/s/d/old-name.docx", nil),
		rec("SPFile", "move", "/s/d/a/move.docx", nil),
		rec("SPFile", "lose-perms", "/s/d/lose.docx", nil),
		rec("SPFile", "grants", "/s/d/grants.docx", nil),
		rec("SPFile", "gain-perms", "/s/d/gain.docx", nil),
		rec("SPFile", "delete", "/s/d/delete.docx", nil),
		rec("SPListItem", "unseen", "/s/l/unseen", nil),
		rec("SPListItem", "same", "/s/l/same", nil),
		roleAssignment("scope-1", "lose-perms", [2]int64{1073741826, 7}),
		roleAssignment("scope-2", "grants", [2]int64{1073741826, 7}, [2]int64{1073741827, 8}),
		// Assignments whose grants change below on an object the inventory does not hold (a web)
		// and on one deleted in the second pass.
		roleAssignment("scope-4", "web-1", [2]int64{1073741826, 7}),
		roleAssignment("scope-5", "delete", [2]int64{1073741826, 7}),
	}
	p2 := []*amrpipev1.Record{
		rec("SPFile", "edit", "/s/d/edit.docx", func(r *amrpipev1.Record) {
			r.GetFile().FileSize, r.GetFile().Version, r.GetFile().ModifiedBy = 200, "2.0", 9
		}),
		rec("SPFile", "rename", "/s/d/new-name.docx", nil),
		rec("SPFile", "move", "/s/d/b/move.docx", func(r *amrpipev1.Record) { r.GetFile().ParentId = "folder-2" }),
		rec("SPFile", "lose-perms", "/s/d/lose.docx", nil),
		rec("SPFile", "grants", "/s/d/grants.docx", nil),
		rec("SPFile", "gain-perms", "/s/d/gain.docx", nil),
		rec("SPFile", "delete", "/s/d/delete.docx", func(r *amrpipev1.Record) { r.SpObject.IsDeleted = true }),
		rec("SPFile", "never-known", "/s/d/never.docx", func(r *amrpipev1.Record) { r.SpObject.IsDeleted = true }),
		rec("SPListItem", "same", "/s/l/same", nil),
		rec("SPListItem", "new", "/s/l/new", nil),
		// The grants are the same set in another order on scope-1's twin, different on scope-2.
		roleAssignment("scope-2", "grants", [2]int64{1073741826, 7}),
		roleAssignment("scope-3", "gain-perms", [2]int64{1073741826, 7}),
		roleAssignment("scope-4", "web-1", [2]int64{1073741827, 8}),
		roleAssignment("scope-5", "delete", [2]int64{1073741827, 8}),
	}
	want := []string{
		"added SPListItem new",
		"changed SPFile edit size,editor,version",
		"deleted SPFile delete",
		"moved SPFile move url,parent_id /s/d/a/move.docx",
		"moved SPFile rename url,name /s/d/old-name.docx",
		"permissions SPFile gain-perms unique_permissions",
		"permissions SPFile grants role_assignments",
		"permissions SPFile lose-perms unique_permissions",
		"permissions RoleAssignment web-1 role_assignments",
	}
	for _, kind := range []inventory.Kind{inventory.Incremental, inventory.Full} {
		t.Run(string(kind), func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, s *inventory.Store) {
				a := begin(t, s, inventory.Full)
				ingest(t, a, p1)
				end(t, a)
				b := begin(t, s, kind)
				ingest(t, b, p2)
				end(t, b)
				cs, err := s.Changes(context.Background(), 0, b.Info().ID)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, c := range cs.Changes {
					line := string(c.Kind) + " " + c.ObjectType + " " + c.ObjectID + " " + strings.Join(c.Fields, ",")
					if c.PrevURL != "" {
						line += " " + c.PrevURL
					}
					got = append(got, strings.TrimSpace(line))
				}
				w := slices.Clone(want)
				if kind == inventory.Full {
					w = append(w, "deleted SPListItem unseen")
				}
				slices.Sort(w)
				slices.Sort(got)
				if !slices.Equal(got, w) {
					t.Errorf("change set:\n%s", setDiff(got, w))
				}
			})
		})
	}
}
