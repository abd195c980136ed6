package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// End ends the pass. A complete pass then settles what the records alone cannot say, in one
// transaction with its change set:
//   - a complete full pass marks deleted every object of its tenant and scope it did not see;
//   - a pass that exported permissions re-derives the unique-permissions flag of the objects it
//     saw (an object has unique permissions when a role assignment of the pass names it);
//   - the change set against the pass's base is computed and stored (see Changes); a first pass
//     (no base) has none.
//
// An incomplete pass records what it saw and computes its change set too, but infers no
// deletions from absence, and Changes refuses it.
func (p *Pass) End(ctx context.Context, complete bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return ErrPassEnded
	}
	s, info := p.s, &p.info
	conn, tx, release, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("end pass %d: %w", info.ID, err)
	}
	defer release()
	for _, q := range s.d.analyze {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("end pass %d: %w", info.ID, err)
		}
	}
	if complete && info.Kind == Full {
		// Every tracked column moves to prev_ (the row was last written by an earlier pass). The
		// two ranges of last_pass (not <>) let objects_pass find the rows.
		set := make([]string, 0, len(tracked)+4)
		for _, c := range tracked {
			set = append(set, "prev_"+c+" = "+c)
		}
		set = append(set, "prev_pass = last_pass", "deleted = 1", "last_pass = ?")
		res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE objects SET `+strings.Join(set, ", ")+
			` WHERE tenant = ? AND scope = ? AND (last_pass < ? OR last_pass > ?) AND deleted = 0`), info.ID, info.Tenant, info.Scope, info.ID, info.ID)
		if err != nil {
			return fmt.Errorf("end pass %d: mark unseen objects deleted: %w", info.ID, err)
		}
		n, _ := res.RowsAffected()
		info.Counts.Deleted += n
	}
	if info.Permissions {
		if err := p.uniquePermissions(ctx, tx); err != nil {
			return fmt.Errorf("end pass %d: unique permissions: %w", info.ID, err)
		}
	}
	var changes []Change
	if info.Base != 0 { // a first pass has nothing to compare with: its change set is the inventory
		if changes, err = p.computeChanges(ctx, tx); err != nil {
			return fmt.Errorf("end pass %d: change set: %w", info.ID, err)
		}
	}
	r := newRows(&changesTable, len(changes))
	for _, c := range changes {
		r.add(string(c.Kind)+"\x00"+c.ObjectType+"\x00"+c.ObjectID,
			info.ID, string(c.Kind), c.ObjectType, c.ObjectID, info.Tenant, c.URL, c.PrevURL, strings.Join(c.Fields, ","))
	}
	if err := s.upsert(ctx, conn, tx, r); err != nil {
		return fmt.Errorf("end pass %d: store change set: %w", info.ID, err)
	}
	info.Counts.Changes = int64(len(changes))
	info.Ended, info.Complete = time.Now().UTC(), complete
	c := info.Counts
	if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE passes SET ended = ?, complete = ?, records = ?, objects = ?, deleted = ?,
		versions = ?, principals = ?, role_assignments = ?, other = ?, changes = ? WHERE pass_id = ?`),
		micros(info.Ended), boolInt(complete), c.Records, c.Objects, c.Deleted, c.Versions, c.Principals, c.RoleAssignments,
		c.Other, c.Changes, info.ID); err != nil {
		return fmt.Errorf("end pass %d: %w", info.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("end pass %d: commit: %w", info.ID, err)
	}
	p.done = true
	return nil
}

// uniquePermissions sets the flag of the objects the pass's role assignments name and clears it
// on the other objects the pass saw. It goes by key, a chunk of ids a statement (byIDs), and
// writes only the rows whose flag flips: a role assignment names its object by id alone, which
// no index of the objects table leads with, and a set-based UPDATE joined on it scans.
func (p *Pass) uniquePermissions(ctx context.Context, tx *sql.Tx) error {
	s, info := p.s, &p.info
	ids, err := queryStrings(ctx, tx, s.d.rebind(`SELECT object_id FROM role_assignments WHERE tenant = ? AND last_pass = ?`), info.Tenant, info.ID)
	if err != nil {
		return err
	}
	if err := s.updateByIDs(ctx, tx, `unique_perms = 1`, `AND last_pass = ? AND deleted = 0 AND unique_perms = 0`, info.Tenant, ids, info.ID); err != nil {
		return err
	}
	flagged, err := queryStrings(ctx, tx, s.d.rebind(`SELECT object_id FROM objects WHERE tenant = ? AND last_pass = ? AND unique_perms = 1 AND deleted = 0`),
		info.Tenant, info.ID)
	if err != nil {
		return err
	}
	named := make(map[string]bool, len(ids))
	for _, id := range ids {
		named[id] = true
	}
	unnamed := slices.DeleteFunc(flagged, func(id string) bool { return named[id] })
	return s.updateByIDs(ctx, tx, `unique_perms = 0`, `AND last_pass = ?`, info.Tenant, unnamed, info.ID)
}

// updateByIDs runs UPDATE objects SET set WHERE byIDs(tenant, chunk) and, then args, for ids
// in chunks of idChunk.
func (s *Store) updateByIDs(ctx context.Context, tx *sql.Tx, set, and string, tenant string, ids []string, args ...any) error {
	for chunk := range slices.Chunk(ids, idChunk) {
		where, byArgs := s.byIDs(tenant, chunk)
		if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE objects`+s.d.byKey+` SET `+set+` WHERE `+where+` `+and), append(byArgs, args...)...); err != nil {
			return err
		}
	}
	return nil
}

// idChunk is how many ids one statement names by byIDs: six parameters an id (its key as each
// content type, and the id), well under both backends' limits. A statement a chunk, not one an
// id: on PostgreSQL each statement is a round trip, and ending a pass that flipped the flag of
// 20,000 objects took 2.1 to 2.3 s, now 0.7 to 0.9 (BenchmarkEndPermissions).
const idChunk = 1000

// byIDs selects the objects of a tenant with one of ids, whatever their type, by key: the keys of
// each id as each content type, then the identities (a key is a hash: the identity decides; a
// row's key is its own identity's, so a row with one of the ids has one of the keys). It returns
// the condition and its arguments.
func (s *Store) byIDs(tenant string, ids []string) (string, []any) {
	args := make([]any, 0, len(ids)*(len(contentTypeNames)+1)+1)
	for _, id := range ids {
		for _, t := range contentTypeNames {
			args = append(args, s.key(tenant, t, id))
		}
	}
	args = append(args, tenant)
	for _, id := range ids {
		args = append(args, id)
	}
	return `okey IN (` + params(len(ids)*len(contentTypeNames)) + `) AND tenant = ? AND object_id IN (` + params(len(ids)) + `)`, args
}

// contentTypeNames are the content object types: what the objects table holds.
var contentTypeNames = []string{"SPList", "SPDocumentLibrary", "SPFolder", "SPFile", "SPListItem"}

func queryStrings(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// computeChanges compares every object the pass wrote (every row it writes takes its scope, so
// objects_pass finds them) with its state before the pass (its prev_ columns): new objects are added (a deleted one that was unknown is nothing to act on), a
// deletion of a live object is deleted, a new URL is a move or rename (with the located fields
// that differ), other differing compared fields are a change, and a different unique-permissions
// flag or role assignment is a permissions change. One object may have a move, a change and a
// permissions change at once.
func (p *Pass) computeChanges(ctx context.Context, tx *sql.Tx) ([]Change, error) {
	s, info := p.s, &p.info
	cols := strings.Join(compared, ", ")
	prev := "prev_" + strings.Join(compared, ", prev_")
	rows, err := tx.QueryContext(ctx, s.d.rebind(`SELECT object_type, object_id, prev_pass IS NULL, deleted, COALESCE(prev_deleted, 0),
		unique_perms, COALESCE(prev_unique_perms, 0), `+cols+`, `+prev+` FROM objects
		WHERE tenant = ? AND scope = ? AND last_pass = ? AND (prev_pass IS NULL OR hash <> prev_hash OR deleted <> prev_deleted OR unique_perms <> prev_unique_perms)`),
		info.Tenant, info.Scope, info.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Change
	byObject := map[string]int{} // object id -> index of a live, pre-existing object's first change (or -1)
	for rows.Next() {
		var typ, id string
		var isNew bool
		var deleted, prevDeleted, unique, prevUnique int
		cur, old := make([]any, len(compared)), make([]any, len(compared))
		for i, c := range compared {
			cur[i], old[i] = newCol(c), newCol(c)
		}
		dest := append(append([]any{&typ, &id, &isNew, &deleted, &prevDeleted, &unique, &prevUnique}, cur...), old...)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		url, prevURL := colString(cur[0]), colString(old[0])
		switch {
		case isNew || prevDeleted != 0:
			if deleted == 0 {
				out = append(out, Change{Kind: Added, ObjectType: typ, ObjectID: id, URL: url})
			}
			continue
		case deleted != 0:
			out = append(out, Change{Kind: Deleted, ObjectType: typ, ObjectID: id, URL: url})
			continue
		}
		byObject[id] = -1
		var moved, edited []string
		for i, c := range compared {
			if colString(cur[i]) == colString(old[i]) {
				continue
			}
			if located[c] {
				moved = append(moved, c)
			} else {
				edited = append(edited, c)
			}
		}
		if len(moved) > 0 && url != prevURL {
			out = append(out, Change{Kind: Moved, ObjectType: typ, ObjectID: id, URL: url, PrevURL: prevURL, Fields: moved})
		} else {
			edited = append(moved, edited...)
		}
		if len(edited) > 0 {
			out = append(out, Change{Kind: Changed, ObjectType: typ, ObjectID: id, URL: url, Fields: edited})
		}
		if unique != prevUnique {
			byObject[id] = len(out)
			out = append(out, Change{Kind: Permissions, ObjectType: typ, ObjectID: id, URL: url, Fields: []string{"unique_permissions"}})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	// A role assignment whose grants differ from its previous pass's: a permissions change of the
	// object it secures (when that object is known and neither new nor deleted now).
	type changedRA struct{ id, url string }
	var changed []changedRA
	ras, err := tx.QueryContext(ctx, s.d.rebind(`SELECT object_id, object_url FROM role_assignments
		WHERE tenant = ? AND last_pass = ? AND prev_pass IS NOT NULL AND hash <> prev_hash`), info.Tenant, info.ID)
	if err != nil {
		return nil, err
	}
	defer ras.Close()
	for ras.Next() {
		var ra changedRA
		if err := ras.Scan(&ra.id, &ra.url); err != nil {
			return nil, err
		}
		changed = append(changed, ra)
	}
	if err := ras.Err(); err != nil {
		return nil, err
	}
	ras.Close()
	// The objects each changed assignment secures, a chunk of assignments a query.
	type securedObject struct {
		typ, url string
		live     bool // neither deleted nor new in this pass
	}
	secured := make(map[string][]securedObject, len(changed))
	for chunk := range slices.Chunk(changed, idChunk) {
		ids := make([]string, len(chunk))
		for i, ra := range chunk {
			ids[i] = ra.id
		}
		where, args := s.byIDs(info.Tenant, ids)
		objs, err := tx.QueryContext(ctx, s.d.rebind(`SELECT object_id, object_type, url, deleted = 0 AND prev_pass IS NOT NULL FROM objects`+s.d.byKey+` WHERE `+where+
			` ORDER BY object_id, object_type`), args...)
		if err != nil {
			return nil, err
		}
		for objs.Next() {
			var id string
			var o securedObject
			if err := objs.Scan(&id, &o.typ, &o.url, &o.live); err != nil {
				objs.Close()
				return nil, err
			}
			secured[id] = append(secured[id], o)
		}
		err = objs.Err()
		if cerr := objs.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	for _, ra := range changed {
		objs, found := secured[ra.id]
		if !found {
			// It secures something the inventory does not hold, such as a web.
			out = permissionsChange(out, byObject, Change{Kind: Permissions, ObjectType: "RoleAssignment", ObjectID: ra.id, URL: ra.url})
			continue
		}
		for _, o := range objs {
			if o.live {
				out = permissionsChange(out, byObject, Change{Kind: Permissions, ObjectType: o.typ, ObjectID: ra.id, URL: o.url})
			}
		}
	}
	return out, nil
}

// permissionsChange adds "role_assignments" to the permissions change of c's object, or c as one.
func permissionsChange(out []Change, byObject map[string]int, c Change) []Change {
	if i, ok := byObject[c.ObjectID]; ok && i >= 0 {
		out[i].Fields = append(out[i].Fields, "role_assignments")
		return out
	}
	c.Fields = []string{"role_assignments"}
	byObject[c.ObjectID] = len(out)
	return append(out, c)
}

func newCol(c string) any {
	switch c {
	case "size", "modified", "author", "editor", "version_count":
		return new(sql.NullInt64)
	}
	return new(sql.NullString)
}

func colString(v any) string {
	switch v := v.(type) {
	case *sql.NullInt64:
		if !v.Valid {
			return "\x00null"
		}
		return fmt.Sprint(v.Int64)
	case *sql.NullString:
		if !v.Valid {
			return "\x00null"
		}
		return v.String
	}
	return ""
}
