package inventory

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Pass is an open pass, safe for concurrent use. Ingest and End write one transaction at a time
// (concurrent calls convert their records at once, then wait for each other): SQLite has one
// writer anyway, and one transaction at a time keeps the upserts of two batches naming the same
// objects from deadlocking on PostgreSQL.
type Pass struct {
	s    *Store
	mu   sync.Mutex
	info PassInfo
	done bool
	// conflicted: an object row this pass tried to copy straight into its table was already
	// there; the pass upserts its objects from then on (copyNew).
	conflicted bool
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

func newRows(t *table, capacity int) *rows {
	return &rows{t: t, index: make(map[string]int, capacity), vals: make([]any, 0, capacity*(len(t.key)+len(t.cols)))}
}

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
	objects, deleted, principals, roles, assignments *rows
	counts                                           Counts
}

// Ingest upserts the records in one transaction. A record delivered twice, in this pass or
// another, writes the same rows: an object's identity is (tenant, object_type, object_id), a
// version's adds its label, a principal's is (job, kind, id), a role assignment's its scope.
func (p *Pass) Ingest(ctx context.Context, recs []*amrpipev1.Record) error {
	b := p.rows(recs) // outside the lock: concurrent callers convert while another one writes
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return ErrPassEnded
	}
	conn, tx, release, err := p.s.begin(ctx)
	if err != nil {
		return fmt.Errorf("ingest into pass %d: %w", p.info.ID, err)
	}
	defer release()
	for _, r := range []*rows{b.objects, b.deleted, b.principals, b.roles, b.assignments} {
		// PostgreSQL: a pass's objects are copied straight into their table until one of them is
		// already there (a tenant's first pass is mostly new objects), skipping the upsert's
		// staging table and INSERT ... ON CONFLICT: a first pass ingests 20 to 40 % faster
		// (docs/inventory.md). A batch that names a row the table holds (a redelivery, a second
		// pass) is upserted, and so is every batch of the pass after it.
		if r == b.objects && p.s.d.copy && !p.conflicted && r.n() > 0 {
			fresh, err := copyNew(ctx, conn, tx, r)
			if err != nil {
				return fmt.Errorf("ingest into pass %d: %w", p.info.ID, err)
			}
			if fresh {
				continue
			}
			p.conflicted = true
		}
		if err := p.s.upsert(ctx, conn, tx, r); err != nil {
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

func (p *Pass) rows(recs []*amrpipev1.Record) *batch {
	b := &batch{objects: newRows(&objectsTable, len(recs)), deleted: newRows(&deletedTable, 0),
		principals: newRows(&principalsTable, 0), roles: newRows(&rolesTable, 0), assignments: newRows(&roleAssignmentsTable, 0)}
	tenant, pass := p.info.Tenant, p.info.ID
	// The values every object row of the batch shares are boxed once (an interface holding a
	// string or a large integer is an allocation, and a row holds two dozen values).
	var tenantV, scopeV, passV any = tenant, p.info.Scope, pass
	var jobID string
	var jobV any
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
				tenant, r.GetJobId(), "group", g.GetId(), g.GetName(), "", "", int64(0), pass)
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
			if !slices.Contains(contentTypeNames, r.GetObjectType()) || r.GetObjectId() == "" {
				b.counts.Other++
				continue
			}
			o := objectOf(r)
			if jobV == nil || r.GetJobId() != jobID {
				jobID, jobV = r.GetJobId(), r.GetJobId()
			}
			vals := []any{p.s.key(tenant, o.Type, o.ID), tenantV, o.Type, o.ID, scopeV, o.URL, o.Name, o.ParentID, o.ListID, o.DocID, o.Size,
				micros(o.Created), micros(o.Modified), o.Author, o.Editor, o.Version, o.VersionCount, versionsOf(r), o.hash(),
				boolInt(o.Deleted), int64(0), passV, passV, jobV}
			key := o.Type + "\x00" + o.ID
			if o.Deleted {
				b.deleted.add(key, vals...)
				b.counts.Deleted++
				continue
			}
			b.objects.add(key, vals...)
			b.counts.Objects++
			b.counts.Versions += o.VersionCount
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

// Version is one historical version of a file or list item, as the object's versions column
// holds it (a JSON array: l label, s size in bytes, m modified in UTC microseconds, e editor id).
type Version struct {
	Label    string `json:"l"`
	Size     int64  `json:"s,omitempty"`
	Modified int64  `json:"m,omitempty"`
	Editor   int64  `json:"e,omitempty"`
}

// versionsOf encodes a record's versions for the versions column (by hand: it runs once per
// record on the ingest path, where encoding/json's reflection over the struct shows).
func versionsOf(r *amrpipev1.Record) string {
	var buf []byte
	switch body := r.GetBody().(type) {
	case *amrpipev1.Record_File:
		vs := body.File.GetVersions()
		buf = make([]byte, 0, 48*len(vs)+2)
		for i, v := range vs {
			buf = appendVersion(buf, i, v.GetVersion(), v.GetFileSize(), tsMicros(v.GetTimeLastModified()), v.GetModifiedBy())
		}
	case *amrpipev1.Record_ListItem:
		vs := body.ListItem.GetVersions()
		buf = make([]byte, 0, 48*len(vs)+2)
		for i, v := range vs {
			buf = appendVersion(buf, i, v.GetVersion(), 0, tsMicros(v.GetTimeLastModified()), v.GetModifiedBy())
		}
	}
	if len(buf) == 0 {
		return "[]"
	}
	return string(append(buf, ']'))
}

// appendVersion appends the i-th element of a versions array (zero numbers left out).
func appendVersion(buf []byte, i int, label string, size, modified, editor int64) []byte {
	if i == 0 {
		buf = append(buf, '[')
	} else {
		buf = append(buf, ',')
	}
	buf = append(buf, `{"l":`...)
	buf = appendJSONString(buf, label)
	if size != 0 {
		buf = strconv.AppendInt(append(buf, `,"s":`...), size, 10)
	}
	if modified != 0 {
		buf = strconv.AppendInt(append(buf, `,"m":`...), modified, 10)
	}
	if editor != 0 {
		buf = strconv.AppendInt(append(buf, `,"e":`...), editor, 10)
	}
	return append(buf, '}')
}

// appendJSONString appends s quoted for JSON: labels are plain ASCII ("3.0"), anything else goes
// through encoding/json.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func tsMicros(t *timestamppb.Timestamp) int64 { return micros(ts(t)) }

// begin starts a write transaction on a connection of its own (PostgreSQL's COPY needs the
// connection); release rolls it back unless it committed and returns the connection. On SQLite
// the store's write transactions take turns here (dialect.oneWriter), so the passes' callers
// need no lock of their own around Ingest and convert their records at once, and they all run
// on the store's one writing connection (Store.writer); release tells the checkpointer of a
// commit.
func (s *Store) begin(ctx context.Context) (_ *sql.Conn, _ *sql.Tx, release func(), err error) {
	unlock := s.lockWrite()
	conn := s.writer
	if conn == nil {
		if conn, err = s.db.Conn(ctx); err != nil {
			unlock()
			return nil, nil, nil, err
		}
	}
	done := func() {
		if conn != s.writer {
			_ = conn.Close() // returns it to the pool: nothing to report
		}
		unlock()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	return conn, tx, func() {
		if errors.Is(tx.Rollback(), sql.ErrTxDone) { // it committed (release is the only rollback)
			s.ckpt.committed()
		}
		done()
	}, nil
}

// lockWrite takes the store's write lock when its backend has a single writer.
func (s *Store) lockWrite() (unlock func()) {
	if !s.d.oneWriter {
		return func() {}
	}
	s.write.Lock()
	return s.write.Unlock
}

// upsert writes r's rows. SQLite takes them in multi-row statements of as many rows as its
// parameter limit allows (at most 512: longer statements gain nothing and cost its parser);
// PostgreSQL by COPY into a temporary table and one INSERT ... SELECT from it (dialect.copy).
func (s *Store) upsert(ctx context.Context, conn *sql.Conn, tx *sql.Tx, r *rows) error {
	n := r.n()
	if n == 0 {
		return nil
	}
	if s.d.copy {
		if err := copyUpsert(ctx, s.d, conn, tx, r); err != nil {
			return fmt.Errorf("upsert %s: %w", r.t.name, err)
		}
		return nil
	}
	ncols := len(r.t.key) + len(r.t.cols)
	per := min(512, s.d.maxParams/ncols)
	var written int64
	err := conn.Raw(func(dc any) error {
		for off := 0; off < n; off += per {
			k := min(per, n-off)
			w, err := s.execRows(ctx, dc, r.t, k, k == per, r.vals[off*ncols:(off+k)*ncols])
			if err != nil {
				return fmt.Errorf("upsert %s: %w", r.t.name, err)
			}
			written += w
		}
		return nil
	})
	if err == nil && written < int64(n) {
		return unwritten(ctx, s.d, tx, r)
	}
	return err
}

// execRows runs the upsert of k rows of t with args on dc, the writer's driver connection, in
// its open transaction. The values go to the driver as they are: database/sql would check and
// convert each of a statement's twelve thousand values, a tenth of SQLite's ingest CPU, when
// the rows are built of int64 and string values only. A column of t.shared that holds one value
// in all k rows (the tenant, the pass) is bound once, not k times: binding is a fifth of the
// ingest's CPU. The statement of the common row count (common) is prepared once for each set of
// such columns; a batch's remainder is not.
func (s *Store) execRows(ctx context.Context, dc any, t *table, k int, common bool, args []any) (written int64, _ error) {
	cols := t.allCols()
	ncols := len(cols)
	var once uint64 // bit j: column j is bound once
	for j, c := range cols {
		if j >= 64 || !slices.Contains(t.shared, c) {
			continue
		}
		v, same := args[j], true
		for r := 1; r < k && same; r++ {
			same = args[r*ncols+j] == v
		}
		if same {
			once |= 1 << j
		}
	}
	nv := s.named[:0] // the write lock is held: one writer
	add := func(v any) { nv = append(nv, driver.NamedValue{Ordinal: len(nv) + 1, Value: v}) }
	for j := range cols {
		if once&(1<<j) != 0 {
			add(args[j])
		}
	}
	for i, v := range args {
		if once&(1<<(i%ncols)) == 0 {
			add(v)
		}
	}
	s.named = nv
	var res driver.Result
	var err error
	if !common {
		ex, ok := dc.(driver.ExecerContext)
		if !ok {
			return 0, fmt.Errorf("driver connection %T runs no statement directly", dc)
		}
		res, err = ex.ExecContext(ctx, upsertSQL(t, k, once), nv)
	} else {
		key := fmt.Sprintf("%s/%s/%d/%x", t.name, t.stage, k, once)
		st, ok := s.stmts[key]
		if !ok {
			pc, ok := dc.(driver.ConnPrepareContext)
			if !ok {
				return 0, fmt.Errorf("driver connection %T prepares no statement", dc)
			}
			if st, err = pc.PrepareContext(ctx, upsertSQL(t, k, once)); err != nil {
				return 0, fmt.Errorf("prepare: %w", err)
			}
			s.stmts[key] = st
		}
		ex, ok := st.(driver.StmtExecContext)
		if !ok {
			return 0, fmt.Errorf("driver statement %T runs with no context", st)
		}
		res, err = ex.ExecContext(ctx, nv)
	}
	if err != nil {
		return 0, err
	}
	// An upsert counts each row it inserted or updated; a row whose key conflicted with
	// another object's (t.same false) is neither.
	return res.RowsAffected()
}

// upsertSQL is SQLite's upsert of n rows into t. The columns of once (bit j for column j) take
// one parameter each, in the SELECT list, that every row of the VALUES list shares; the rows
// hold the other columns. The parameters are all anonymous: SQLite looks a numbered one up by a
// scan of the statement's names, which made the 12,000-parameter statements ten times slower.
func upsertSQL(t *table, n int, once uint64) string {
	cols := t.allCols()
	var b strings.Builder
	b.WriteString("INSERT INTO " + t.name + " (" + strings.Join(cols, ", ") + ") ")
	per := len(cols) // values a row holds
	if once != 0 {
		b.WriteString("SELECT ")
		per = 0
		for j := range cols {
			if j > 0 {
				b.WriteString(", ")
			}
			if once&(1<<j) != 0 {
				b.WriteByte('?')
				continue
			}
			per++
			b.WriteString("column" + strconv.Itoa(per))
		}
		b.WriteString(" FROM (")
	}
	row := "(" + params(per) + ")"
	b.WriteString("VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	if once != 0 {
		// WHERE true: an upsert's SELECT needs a clause between FROM and ON CONFLICT, which
		// SQLite would otherwise parse as a join constraint.
		b.WriteString(") WHERE true")
	}
	b.WriteString(onConflict(t))
	return b.String()
}

// onConflict is the upsert's conflict clause, the same for both backends.
func onConflict(t *table) string {
	set := t.set
	if set == "" {
		set = strings.Join(setExcluded(t.cols...), ", ")
	}
	where := ""
	if t.same != "" {
		where = " WHERE " + t.same
	}
	return " ON CONFLICT (" + strings.Join(t.key, ", ") + ") DO UPDATE SET " + set + where
}

// copyUpsert copies r's rows into its table's temporary table (created once per connection,
// emptied at commit; each upsert of a transaction has its own) in PostgreSQL's binary COPY format, then upserts them from there in one statement:
// neither a VALUES list of thousands of rows (planned row by row) nor unnest over column arrays
// (decoded element by element) comes close.
func copyUpsert(ctx context.Context, d dialect, conn *sql.Conn, tx *sql.Tx, r *rows) error {
	stage := r.t.stage
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS `+stage+` (LIKE `+r.t.name+`) ON COMMIT DELETE ROWS`); err != nil {
		return err
	}
	if err := copyRows(ctx, conn, stage, r); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	list := strings.Join(r.t.allCols(), ", ")
	res, err := tx.ExecContext(ctx, "INSERT INTO "+r.t.name+" ("+list+") SELECT "+list+" FROM "+stage+onConflict(r.t))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == cardinalityViolation && r.t.same != "" {
		// Two staged rows with one key: rows are de-duplicated by identity, so two objects.
		return unwritten(ctx, d, nil, r)
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n < int64(r.n()) {
		return unwritten(ctx, d, tx, r)
	}
	return nil
}

// cardinalityViolation is PostgreSQL's SQLSTATE cardinality_violation: "ON CONFLICT DO UPDATE
// command cannot affect row a second time".
const cardinalityViolation = "21000"

// unwritten explains why an upsert of r wrote fewer rows than it has: two objects with one key,
// in r or one in r and one in the table (read through tx unless it is nil).
func unwritten(ctx context.Context, d dialect, tx *sql.Tx, r *rows) error {
	cols := r.t.allCols()
	w := len(cols)
	ki, ti, yi, ii := slices.Index(cols, "okey"), slices.Index(cols, "tenant"), slices.Index(cols, "object_type"), slices.Index(cols, "object_id")
	if r.t.same == "" || ki < 0 || ti < 0 || yi < 0 || ii < 0 {
		return fmt.Errorf("upsert %s: %d rows, fewer written", r.t.name, r.n())
	}
	name := func(row []any) string { return fmt.Sprint(row[yi], " ", row[ii]) }
	seen := make(map[int64][]any, r.n())
	for off := 0; off < len(r.vals); off += w {
		row := r.vals[off : off+w]
		k, _ := row[ki].(int64)
		if other, ok := seen[k]; ok {
			return &KeyCollisionError{Tenant: fmt.Sprint(row[ti]), A: name(other), B: name(row)}
		}
		seen[k] = row
	}
	if tx != nil {
		for k, row := range seen {
			var tenant, typ, id string
			err := tx.QueryRowContext(ctx, d.rebind(`SELECT tenant, object_type, object_id FROM objects WHERE okey = ?`), k).Scan(&tenant, &typ, &id)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("upsert %s: rows not written, and reading their keys back: %w", r.t.name, err)
			}
			if err == nil && (tenant != row[ti] || typ != row[yi] || id != row[ii]) {
				return &KeyCollisionError{Tenant: fmt.Sprint(row[ti]), A: name(row), B: typ + " " + id}
			}
		}
	}
	return fmt.Errorf("upsert %s: %d rows, fewer written, and no two objects with one key among them", r.t.name, r.n())
}

// uniqueViolation is PostgreSQL's SQLSTATE unique_violation (Appendix A, "PostgreSQL Error Codes").
const uniqueViolation = "23505"

// copyNew copies r's rows straight into their table, as the upsert would insert them, and
// reports false, having changed nothing, when one of them names a row the table holds (a
// unique violation rolls back to the savepoint taken before the copy).
func copyNew(ctx context.Context, conn *sql.Conn, tx *sql.Tx, r *rows) (bool, error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT copy_new"); err != nil {
		return false, err
	}
	err := copyRows(ctx, conn, r.t.name, r)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == uniqueViolation {
		_, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT copy_new")
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("copy: %w", err)
	}
	_, err = tx.ExecContext(ctx, "RELEASE SAVEPOINT copy_new")
	return err == nil, err
}

// copyRows copies r's rows into table in PostgreSQL's binary COPY format.
func copyRows(ctx context.Context, conn *sql.Conn, table string, r *rows) error {
	cols := r.t.allCols()
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("driver connection %T is not pgx's", dc)
		}
		_, err := pc.Conn().CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(r.n(), func(i int) ([]any, error) {
			return r.vals[i*len(cols) : (i+1)*len(cols)], nil
		}))
		return err
	})
}

// objectKey is an object's key in the objects table (okey): the first 8 bytes of the SHA-256 of
// its identity (tenant, object_type, object_id), as a signed integer. A cryptographic hash,
// although the identities come from SharePoint (GUIDs it assigns): two objects meet on a key
// only by chance, and nobody can make them.
func objectKey(tenant, typ, id string) int64 {
	h := sha256.New()
	for _, s := range [...]string{tenant, typ, id} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return int64(binary.BigEndian.Uint64(h.Sum(sum[:0])))
}
