package inventory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestTwoObjectsWithOneKey: objects are keyed by a 64-bit hash of their identity. Two objects
// whose keys collide (forced here) are never merged into one row: the batch that meets them fails
// with a KeyCollisionError naming both and writes nothing, whether both are in the batch or one
// was stored before. The other objects of the tenant keep their keys.
func TestTwoObjectsWithOneKey(t *testing.T) {
	recs := fullRead(t, smallTenant(t), "job-1")
	var files []*amrpipev1.Record
	var rest []*amrpipev1.Record
	for _, r := range recs {
		if r.GetObjectType() == "SPFile" && len(files) < 2 {
			files = append(files, r)
			continue
		}
		rest = append(rest, r)
	}
	a, b := files[0], files[1]
	// b's key is a's; every other object keeps its own.
	collide := func(tenant, typ, id string) int64 {
		if typ == b.GetObjectType() && id == b.GetObjectId() {
			typ, id = a.GetObjectType(), a.GetObjectId()
		}
		return inventory.ObjectKey(tenant, typ, id)
	}
	name := func(r *amrpipev1.Record) string { return r.GetObjectType() + " " + r.GetObjectId() }
	wantErr := func(t *testing.T, err error) {
		t.Helper()
		var ce *inventory.KeyCollisionError
		if !errors.As(err, &ce) {
			t.Fatalf("Ingest = %v, want a KeyCollisionError", err)
		}
		if got := map[string]bool{ce.A: true, ce.B: true}; !got[name(a)] || !got[name(b)] || ce.Tenant != testTenant {
			t.Fatalf("collision of %q and %q in %q, want %q and %q in %q", ce.A, ce.B, ce.Tenant, name(a), name(b), testTenant)
		}
	}
	t.Run("in one batch", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, s *inventory.Store) {
			inventory.SetObjectKey(s, collide)
			p := begin(t, s, inventory.Full)
			wantErr(t, p.Ingest(context.Background(), append([]*amrpipev1.Record{a, b}, rest...)))
			if got := objects(t, s, inventory.Filter{}); len(got) != 0 {
				t.Errorf("%d objects stored by the failed batch, want none", len(got))
			}
		})
	})
	t.Run("one stored before", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, s *inventory.Store) {
			inventory.SetObjectKey(s, collide)
			p := begin(t, s, inventory.Full)
			if err := p.Ingest(context.Background(), append([]*amrpipev1.Record{a}, rest[:len(rest)/2]...)); err != nil {
				t.Fatal(err)
			}
			before := objects(t, s, inventory.Filter{})
			// Again, as a redelivery would: the same objects are no collision.
			if err := p.Ingest(context.Background(), []*amrpipev1.Record{a}); err != nil {
				t.Fatal(err)
			}
			wantErr(t, p.Ingest(context.Background(), append(append([]*amrpipev1.Record(nil), rest[len(rest)/2:]...), b)))
			after := objects(t, s, inventory.Filter{})
			if len(after) != len(before) {
				t.Errorf("%d objects after the failed batch, %d before", len(after), len(before))
			}
			if o := after[testenv.Object{Type: a.GetObjectType(), ID: a.GetObjectId()}]; o == nil || o.URL != a.GetFile().GetServerRelativeUrl() {
				t.Errorf("object %s after the failed batch: %+v, want it as stored", name(a), o)
			}
		})
	})
}
