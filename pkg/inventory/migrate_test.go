package inventory_test

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/inventory"
)

// objectsV1 is the objects table as amrpipe created it before objects had a key of their own
// (okey): keyed by the identity.
const objectsV1 = `CREATE TABLE objects_v1 (
	tenant TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL, scope TEXT NOT NULL,
	url TEXT NOT NULL, name TEXT NOT NULL, parent_id TEXT NOT NULL, list_id TEXT NOT NULL, doc_id TEXT NOT NULL,
	size BIGINT NOT NULL, created BIGINT NOT NULL, modified BIGINT NOT NULL, author BIGINT NOT NULL, editor BIGINT NOT NULL,
	version TEXT NOT NULL, version_count BIGINT NOT NULL, versions TEXT NOT NULL, hash BIGINT NOT NULL, deleted INTEGER NOT NULL,
	unique_perms INTEGER NOT NULL, first_pass BIGINT NOT NULL, last_pass BIGINT NOT NULL, last_job TEXT NOT NULL,
	prev_pass BIGINT, prev_url TEXT, prev_name TEXT, prev_parent_id TEXT, prev_list_id TEXT, prev_size BIGINT,
	prev_modified BIGINT, prev_author BIGINT, prev_editor BIGINT, prev_version TEXT, prev_version_count BIGINT,
	prev_hash BIGINT, prev_deleted BIGINT, prev_unique_perms BIGINT,
	PRIMARY KEY (tenant, object_type, object_id))`

// TestInventoryFromBeforeObjectKeysOpens: an inventory whose objects table is keyed by the
// objects' identity, as amrpipe wrote it before okey, opens with the current schema (Open
// migrates it) and holds the same objects, with their previous states and change sets, and a
// further pass over it changes nothing that the same pass would not change in a new inventory.
func TestInventoryFromBeforeObjectKeysOpens(t *testing.T) {
	ctx := context.Background()
	tn := smallTenant(t)
	recs1 := fullRead(t, tn, "job-1")
	tn.Advance(time.Hour)
	tn.Mutate(60)
	recs2 := fullRead(t, tn, "job-2")
	all := inventory.Filter{IncludeDeleted: true}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s, err := inventory.Open(ctx, b.dsn)
			if err != nil {
				t.Fatal(err)
			}
			p1 := begin(t, s, inventory.Full)
			ingest(t, p1, recs1)
			end(t, p1)
			p2 := begin(t, s, inventory.Full)
			ingest(t, p2, recs2)
			end(t, p2)
			want := objects(t, s, all)
			wantChanges, err := s.Changes(ctx, p1.Info().ID, p2.Info().ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			// The same rows, as the schema before okey held them.
			driver, source := "pgx", b.dsn
			if b.name == "sqlite" {
				driver, source = "sqlite", "file:"+strings.TrimPrefix(b.dsn, "sqlite:")
			}
			db, err := sql.Open(driver, source)
			if err != nil {
				t.Fatal(err)
			}
			cols := "tenant, object_type, object_id, scope, url, name, parent_id, list_id, doc_id, size, created, modified, author, editor, " +
				"version, version_count, versions, hash, deleted, unique_perms, first_pass, last_pass, last_job, prev_pass, prev_url, prev_name, " +
				"prev_parent_id, prev_list_id, prev_size, prev_modified, prev_author, prev_editor, prev_version, prev_version_count, prev_hash, " +
				"prev_deleted, prev_unique_perms"
			for _, q := range []string{objectsV1, "INSERT INTO objects_v1 (" + cols + ") SELECT " + cols + " FROM objects", "DROP TABLE objects",
				"ALTER TABLE objects_v1 RENAME TO objects",
				"CREATE INDEX objects_unique_perms ON objects (tenant, last_pass) WHERE unique_perms = 1",
				"CREATE INDEX objects_pass ON objects (tenant, scope, last_pass)"} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}

			s, err = inventory.Open(ctx, b.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(okey) FROM objects").Scan(&n); err != nil || n != len(want) {
				t.Fatalf("%d keyed objects (%v), want %d", n, err, len(want))
			}
			db.Close()
			if got := objects(t, s, all); !reflect.DeepEqual(got, want) {
				t.Errorf("%d objects after migrating, want the %d before", len(got), len(want))
			}
			gotChanges, err := s.Changes(ctx, p1.Info().ID, p2.Info().ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotChanges, wantChanges) || len(wantChanges.Changes) == 0 {
				t.Errorf("change set after migrating: %d changes, want the %d before", len(gotChanges.Changes), len(wantChanges.Changes))
			}
			// A second process that found the old inventory too migrates it again once the first
			// is done: the same table, with its key index.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = inventory.Open(ctx, b.dsn); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := inventory.RekeyObjects(ctx, s); err != nil {
				t.Fatal(err)
			}
			// The second pass's records again: the objects are found by their new keys, so
			// nothing is added and nothing changes but the pass that saw them.
			p3 := begin(t, s, inventory.Full)
			ingest(t, p3, recs2)
			end(t, p3)
			again := objects(t, s, all)
			if len(again) != len(want) {
				t.Errorf("%d objects after a third pass, want %d", len(again), len(want))
			}
			cs, err := s.Changes(ctx, p2.Info().ID, p3.Info().ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs.Changes) != 0 {
				t.Errorf("the same records again changed %d objects: %+v", len(cs.Changes), cs.Changes[0])
			}
		})
	}
}
