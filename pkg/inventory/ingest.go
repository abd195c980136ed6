package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Pass is an open pass. Ingest and End are serialised by the pass (concurrent calls wait for each
// other): SQLite has one writer anyway, and one transaction at a time keeps the upserts of two
// batches naming the same object from deadlocking on PostgreSQL.
type Pass struct {
	s    *Store
	mu   sync.Mutex
	info PassInfo
	done bool
}

// Info is the pass as begun, with what it has received so far.
func (p *Pass) Info() PassInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info
}

// rows are the values of one table's rows, flattened in its column order, de-duplicated by key
// (the last record of an object in a batch wins, as it would in two statements).
type rows struct {
	t     *table
	vals  []any
	index map[string]int // key -> row number
}

func newRows(t *table) *rows { return &rows{t: t, index: map[string]int{}} }

func (r *rows) add(key string, vals ...any) {
	if i, ok := r.index[key]; ok {
		copy(r.vals[i*len(vals):], vals)
		return
	}
	r.index[key] = len(r.vals) / len(vals)
	r.vals = append(r.vals, vals...)
}

func (r *rows) n() int { return len(r.index) }

// batch is one Ingest call's rows, by table.
type batch struct {
	objects, deleted, versions, principals, roles, assignments *rows
	counts                                                     Counts
}

// Ingest upserts the records in one transaction. A record delivered twice, in this pass or
// another, writes the same rows: an object's identity is (tenant, object_type, object_id), a
// version's adds its label, a principal's is (job, kind, id), a role assignment's its scope.
func (p *Pass) Ingest(ctx context.Context, recs []*amrpipev1.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return ErrPassEnded
	}
	b := p.rows(recs)
	tx, err := p.s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ingest into pass %d: %w", p.info.ID, err)
	}
	defer tx.Rollback()
	for _, r := range []*rows{b.objects, b.deleted, b.versions, b.principals, b.roles, b.assignments} {
		if err := p.s.upsert(ctx, tx, r); err != nil {
			return fmt.Errorf("ingest into pass %d: %w", p.info.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ingest into pass %d: commit: %w", p.info.ID, err)
	}
	c := &p.info.Counts
	c.Records += b.counts.Records
	c.Objects += b.counts.Objects
	c.Deleted += b.counts.Deleted
	c.Versions += b.counts.Versions
	c.Principals += b.counts.Principals
	c.RoleAssignments += b.counts.RoleAssignments
	c.Other += b.counts.Other
	return nil
}

// Content object types: what the objects table holds.
var contentTypes = map[string]bool{"SPList": true, "SPDocumentLibrary": true, "SPFolder": true, "SPFile": true, "SPListItem": true}

func (p *Pass) rows(recs []*amrpipev1.Record) *batch {
	b := &batch{objects: newRows(&objectsTable), deleted: newRows(&deletedTable), versions: newRows(&versionsTable),
		principals: newRows(&principalsTable), roles: newRows(&rolesTable), assignments: newRows(&roleAssignmentsTable)}
	tenant, pass := p.info.Tenant, p.info.ID
	b.counts.Records = int64(len(recs))
	for _, r := range recs {
		switch body := r.GetBody().(type) {
		case *amrpipev1.Record_User:
			u := body.User
			b.principals.add(r.GetJobId()+"\x00u\x00"+strconv.FormatInt(u.GetId(), 10),
				tenant, r.GetJobId(), "user", u.GetId(), u.GetName(), u.GetLogin(), u.GetEmail(), boolInt(u.GetIsSiteAdmin()), pass)
			b.counts.Principals++
		case *amrpipev1.Record_Group:
			g := body.Group
			b.principals.add(r.GetJobId()+"\x00g\x00"+strconv.FormatInt(g.GetId(), 10),
				tenant, r.GetJobId(), "group", g.GetId(), g.GetName(), "", "", 0, pass)
			b.counts.Principals++
		case *amrpipev1.Record_Role:
			ro := body.Role
			b.roles.add(r.GetJobId()+"\x00"+strconv.FormatInt(ro.GetRoleId(), 10), tenant, r.GetJobId(), ro.GetRoleId(), ro.GetTitle(), ro.GetPermMask(), pass)
			b.counts.Other++
		case *amrpipev1.Record_RoleAssignment:
			ra := body.RoleAssignment
			assign := assignments(ra.GetAssignments())
			b.assignments.add(ra.GetScopeId(), tenant, ra.GetScopeId(), ra.GetObjectId(), ra.GetObjectUrl(), assign, hashStrings(assign), pass, r.GetJobId())
			b.counts.RoleAssignments++
		default:
			if !contentTypes[r.GetObjectType()] || r.GetObjectId() == "" {
				b.counts.Other++
				continue
			}
			o := objectOf(r)
			vals := []any{tenant, o.Type, o.ID, p.info.Scope, o.URL, o.Name, o.ParentID, o.ListID, o.DocID, o.Size,
				micros(o.Created), micros(o.Modified), o.Author, o.Editor, o.Version, o.VersionCount, o.hash(),
				boolInt(o.Deleted), 0, pass, pass, r.GetJobId()}
			key := o.Type + "\x00" + o.ID
			if o.Deleted {
				b.deleted.add(key, vals...)
				b.counts.Deleted++
				continue
			}
			b.objects.add(key, vals...)
			b.counts.Objects++
			for _, v := range versionsOf(r) {
				b.versions.add(key+"\x00"+v.label, tenant, o.Type, o.ID, v.label, v.size, v.modified, v.editor, pass)
				b.counts.Versions++
			}
		}
	}
	return b
}

// assignments is a role assignment's grants as "role:principal" pairs, sorted, comma-separated:
// the same grants in another order are the same permissions.
func assignments(as []*amrpipev1.Assignment) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = strconv.FormatInt(a.GetRoleId(), 10) + ":" + strconv.FormatInt(a.GetPrincipalId(), 10)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func hashStrings(ss ...string) int64 {
	h := fnv.New64a()
	for _, s := range ss {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

type version struct {
	label                  string
	size, modified, editor int64
}

func versionsOf(r *amrpipev1.Record) []version {
	var out []version
	switch body := r.GetBody().(type) {
	case *amrpipev1.Record_File:
		for _, v := range body.File.GetVersions() {
			out = append(out, version{v.GetVersion(), v.GetFileSize(), tsMicros(v.GetTimeLastModified()), v.GetModifiedBy()})
		}
	case *amrpipev1.Record_ListItem:
		for _, v := range body.ListItem.GetVersions() {
			out = append(out, version{v.GetVersion(), 0, tsMicros(v.GetTimeLastModified()), v.GetModifiedBy()})
		}
	}
	return out
}

func tsMicros(t *timestamppb.Timestamp) int64 { return micros(ts(t)) }

// upsert writes r's rows in statements of as many rows as the dialect's parameter limit allows
// (at most 512: longer statements gain nothing and cost SQLite's parser).
func (s *Store) upsert(ctx context.Context, tx *sql.Tx, r *rows) error {
	n := r.n()
	if n == 0 {
		return nil
	}
	ncols := len(r.t.key) + len(r.t.cols)
	per := min(512, s.d.maxParams/ncols)
	for off := 0; off < n; off += per {
		k := min(per, n-off)
		args := r.vals[off*ncols : (off+k)*ncols]
		var err error
		if k == per { // the common statement is prepared once; a batch's remainder is not
			var st *sql.Stmt
			if st, err = s.stmt(ctx, r.t, k); err == nil {
				_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
			}
		} else {
			_, err = tx.ExecContext(ctx, s.d.rebind(upsertSQL(r.t, k)), args...)
		}
		if err != nil {
			return fmt.Errorf("upsert %s: %w", r.t.name, err)
		}
	}
	return nil
}

// stmt is the prepared upsert of n rows into t, prepared once per Store.
func (s *Store) stmt(ctx context.Context, t *table, n int) (*sql.Stmt, error) {
	key := fmt.Sprintf("%p/%d", t, n)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stmts[key]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, s.d.rebind(upsertSQL(t, n)))
	if err != nil {
		return nil, fmt.Errorf("prepare upsert %s: %w", t.name, err)
	}
	s.stmts[key] = st
	return st, nil
}

func upsertSQL(t *table, n int) string {
	cols := t.allCols()
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	var b strings.Builder
	b.WriteString("INSERT INTO " + t.name + " (" + strings.Join(cols, ", ") + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	b.WriteString(" ON CONFLICT (" + strings.Join(t.key, ", ") + ") DO UPDATE SET ")
	if t.set != "" {
		b.WriteString(t.set)
	} else {
		b.WriteString(strings.Join(setExcluded(t.cols...), ", "))
	}
	return b.String()
}
