package inventory

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// migrateKeys moves an inventory whose objects are keyed by their identity (tenant, object_type,
// object_id), as amrpipe wrote them before objects had a key of their own (okey), to the current
// schema: in one transaction, the objects table is renamed, the current one created and filled
// from it in identity order, a chunk at a time, with each row's key, and the old one dropped. A
// crash or an error (two objects whose keys collide: a KeyCollisionError on SQLite, the unique
// violation of objects_key on PostgreSQL) leaves the inventory as it was. A new inventory, or one
// created since, is left alone.
func (s *Store) migrateKeys(ctx context.Context) error {
	if s.hasColumn(ctx, "objects", "okey") || !s.hasColumn(ctx, "objects", "object_id") {
		return nil
	}
	return s.rekeyObjects(ctx)
}

// rekeyObjects rebuilds the objects table in the current layout from the one there, keying each
// row by its identity. On a table that has okey already (another process migrated it since this
// one looked), it rebuilds the same table.
func (s *Store) rekeyObjects(ctx context.Context) error {
	conn, tx, release, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	// The renamed table's indexes are dropped, objects_key too: a process that found the same old
	// inventory and migrated it first has created one, which would otherwise stand for the new
	// table's (CREATE ... IF NOT EXISTS) and go with the old one. Migrating twice is only slower.
	for _, q := range append([]string{"ALTER TABLE objects RENAME TO objects_v1", "DROP INDEX IF EXISTS objects_key",
		"DROP INDEX IF EXISTS objects_pass", "DROP INDEX IF EXISTS objects_unique_perms"}, schema(s.d)...) {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(q)[0], err)
		}
	}
	// Every column but the key, in the current table's order.
	cols := slices.Clone(objectsTable.cols)
	cols = append(cols, "prev_pass")
	for _, c := range tracked {
		cols = append(cols, "prev_"+c)
	}
	t := &table{name: "objects", stage: "stage_migrate", key: []string{"okey"}, cols: cols, same: objectIdentity}
	const chunk = 4096
	list := strings.Join(cols, ", ")
	var last []any // the identity of the last row copied
	for {
		q := "SELECT " + list + " FROM objects_v1"
		if last != nil {
			q += " WHERE (tenant, object_type, object_id) > (?, ?, ?)"
		}
		q += " ORDER BY tenant, object_type, object_id LIMIT " + fmt.Sprint(chunk)
		rows, err := tx.QueryContext(ctx, s.d.rebind(q), last...)
		if err != nil {
			return fmt.Errorf("read objects: %w", err)
		}
		r := newRows(t, chunk)
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return fmt.Errorf("read objects: %w", err)
			}
			tenant, typ, id := fmt.Sprint(vals[0]), fmt.Sprint(vals[1]), fmt.Sprint(vals[2])
			r.add(typ+"\x00"+id, append([]any{s.key(tenant, typ, id)}, vals...)...)
			last = []any{tenant, typ, id}
		}
		err = rows.Err()
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("read objects: %w", err)
		}
		if r.n() == 0 {
			break
		}
		if s.d.copy {
			// PostgreSQL: the new table holds only what this migration copied, each identity
			// once, so the rows go straight in.
			err = copyRows(ctx, conn, "objects", r)
		} else {
			err = s.upsert(ctx, conn, tx, r)
		}
		if err != nil {
			return fmt.Errorf("copy objects: %w", err)
		}
		if r.n() < chunk {
			break
		}
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE objects_v1"); err != nil {
		return err
	}
	return tx.Commit()
}

// hasColumn reports whether table has column (false when there is no such table).
func (s *Store) hasColumn(ctx context.Context, table, column string) bool {
	rows, err := s.db.QueryContext(ctx, "SELECT "+column+" FROM "+table+" WHERE 1 = 0")
	if err != nil {
		return false
	}
	return rows.Close() == nil
}
