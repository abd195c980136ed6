package inventory

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Store is an inventory database. It is safe for concurrent use; at most one pass per tenant and
// scope is open at a time (BeginPass ends an abandoned one).
type Store struct {
	db *sql.DB
	d  dialect

	// stmts are SQLite's prepared upserts by table and row count, on the writer's driver
	// connection; named is their arguments' buffer. Both belong to the write lock's holder.
	stmts map[string]driver.Stmt
	named []driver.NamedValue

	write sync.Mutex // held by a write transaction when the backend has one writer (lockWrite)
	// writer is the one connection SQLite's write transactions run on. A connection drops its
	// page cache when it finds that another one wrote since it last looked: with writes spread
	// over the pool, every transaction of the demo's sink began by freeing and re-reading its
	// 64 MiB cache (3 % of the demo's CPU in madvise alone).
	writer *sql.Conn

	ckpt *checkpointer // SQLite: checkpoints the WAL beside the writer (nil on PostgreSQL)

	key func(tenant, typ, id string) int64 // objectKey; a test's makes two objects collide

	closeOnce sync.Once
	closeErr  error
}

// Open opens (and creates or migrates) the inventory at dsn: "sqlite:/path/inv.db" for the
// embedded SQLite database, "postgres://user@host:port/db?..." for PostgreSQL.
func Open(ctx context.Context, dsn string) (*Store, error) {
	d, source, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	db, err := d.open(source)
	if err != nil {
		return nil, fmt.Errorf("open inventory %s: %w", d.name, err)
	}
	s := &Store{db: db, d: d, stmts: map[string]driver.Stmt{}, key: objectKey}
	for _, q := range d.setup {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return nil, fmt.Errorf("inventory schema (%s): %w", d.name, err)
		}
	}
	if d.oneWriter {
		if s.writer, err = db.Conn(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("open inventory %s: %w", d.name, err)
		}
	}
	if err := s.migrateKeys(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("inventory schema (%s): keying the objects of an inventory created before okey: %w", d.name, err)
	}
	for _, q := range schema(d) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			s.Close()
			return nil, fmt.Errorf("inventory schema (%s): %w", d.name, err)
		}
	}
	if d.walCheckpointer {
		s.ckpt = startCheckpointer(db)
	}
	return s, nil
}

// Backend is "sqlite" or "postgres".
func (s *Store) Backend() string { return s.d.name }

// Close releases the database. Closing again does nothing and returns the first Close's error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() error {
	s.ckpt.stop()
	var errs []error
	if s.writer != nil {
		unlock := s.lockWrite()
		raw := s.writer.Raw(func(any) error {
			for _, st := range s.stmts {
				errs = append(errs, st.Close())
			}
			return nil
		})
		errs = append(errs, raw, s.writer.Close())
		s.stmts = nil
		unlock()
	}
	return errors.Join(append(errs, s.db.Close())...)
}

// Kind is a pass's kind.
type Kind string

// Pass kinds: a full pass exports everything in scope (an object it did not see is deleted); an
// incremental one exports what changed since a change token (deletions arrive as IsDeleted).
const (
	Full        Kind = "full"
	Incremental Kind = "incremental"
)

// PassInfo describes a pass when it begins, and what it did when read back.
type PassInfo struct {
	ID int64
	// Tenant identifies the tenant (e.g. its host, contoso.sharepoint.com). Diffs and validations
	// refuse to compare passes of different tenants.
	Tenant string
	// Scope names what the pass covers (e.g. the plan's site URLs). A pass's change set is against
	// the previous pass of the same tenant and scope, and a full pass deletes the objects of its
	// scope that it did not see.
	Scope   string
	PlanIDs []string
	Kind    Kind
	// Permissions says the pass's jobs exported role assignments (IncludePermission or
	// IncludeSecurity): only then is an object's unique-permissions flag re-derived.
	Permissions bool
	// Base is the pass this one's change set is against (0: none, everything is added).
	Base     int64
	Started  time.Time
	Ended    time.Time // zero while the pass is open
	Complete bool
	Counts   Counts
}

// Counts are what a pass received.
type Counts struct {
	Records, Objects, Deleted, Versions, Principals, RoleAssignments, Other, Changes int64
}

// Open reports whether the pass has not ended.
func (p PassInfo) Open() bool { return p.Ended.IsZero() }

func (p PassInfo) validate() error {
	switch {
	case strings.TrimSpace(p.Tenant) == "":
		return &ArgError{Arg: "tenant", Reason: "empty"}
	case p.Kind != Full && p.Kind != Incremental:
		return &ArgError{Arg: "kind", Reason: fmt.Sprintf("%q is neither %q nor %q", p.Kind, Full, Incremental)}
	}
	return nil
}

// BeginPass records a new pass and returns it open. A pass of the same tenant and scope left open
// (its process died) is ended as incomplete first.
func (s *Store) BeginPass(ctx context.Context, info PassInfo) (*Pass, error) {
	if err := info.validate(); err != nil {
		return nil, err
	}
	_, tx, release, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin pass: %w", err)
	}
	defer release()
	now := time.Now().UTC()
	if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE passes SET ended = ?, complete = 0 WHERE tenant = ? AND scope = ? AND ended = 0`),
		micros(now), info.Tenant, info.Scope); err != nil {
		return nil, fmt.Errorf("end abandoned passes: %w", err)
	}
	var base sql.NullInt64
	if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT MAX(pass_id) FROM passes WHERE tenant = ? AND scope = ?`),
		info.Tenant, info.Scope).Scan(&base); err != nil {
		return nil, fmt.Errorf("previous pass: %w", err)
	}
	info.Base, info.Started, info.Ended, info.Complete, info.Counts = base.Int64, now, time.Time{}, false, Counts{}
	if err := tx.QueryRowContext(ctx, s.d.rebind(`INSERT INTO passes (tenant, scope, plan_ids, kind, permissions, base_pass, started)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING pass_id`),
		info.Tenant, info.Scope, strings.Join(info.PlanIDs, ","), string(info.Kind), boolInt(info.Permissions), info.Base, micros(now)).Scan(&info.ID); err != nil {
		return nil, fmt.Errorf("insert pass: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("begin pass: %w", err)
	}
	return &Pass{s: s, info: info}, nil
}

const passCols = `pass_id, tenant, scope, plan_ids, kind, permissions, base_pass, started, ended, complete,
	records, objects, deleted, versions, principals, role_assignments, other, changes`

func scanPass(sc interface{ Scan(...any) error }) (PassInfo, error) {
	var p PassInfo
	var plans, kind string
	var perms, complete int
	var started, ended int64
	c := &p.Counts
	err := sc.Scan(&p.ID, &p.Tenant, &p.Scope, &plans, &kind, &perms, &p.Base, &started, &ended, &complete,
		&c.Records, &c.Objects, &c.Deleted, &c.Versions, &c.Principals, &c.RoleAssignments, &c.Other, &c.Changes)
	if err != nil {
		return p, err
	}
	if plans != "" {
		p.PlanIDs = strings.Split(plans, ",")
	}
	p.Kind, p.Permissions, p.Complete = Kind(kind), perms != 0, complete != 0
	p.Started = fromMicros(started)
	if ended != 0 {
		p.Ended = fromMicros(ended)
	}
	return p, nil
}

// Passes lists every pass, oldest first.
func (s *Store) Passes(ctx context.Context) ([]PassInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+passCols+` FROM passes ORDER BY pass_id`)
	if err != nil {
		return nil, fmt.Errorf("list passes: %w", err)
	}
	defer rows.Close()
	var out []PassInfo
	for rows.Next() {
		p, err := scanPass(rows)
		if err != nil {
			return nil, fmt.Errorf("list passes: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PassByID returns one pass, or an *UnknownPassError.
func (s *Store) PassByID(ctx context.Context, id int64) (PassInfo, error) {
	p, err := scanPass(s.db.QueryRowContext(ctx, s.d.rebind(`SELECT `+passCols+` FROM passes WHERE pass_id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, &UnknownPassError{ID: id}
	}
	if err != nil {
		return p, fmt.Errorf("pass %d: %w", id, err)
	}
	return p, nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// boolInt is a flag as the tables hold it (an int64: the values SQLite's upserts bind go to the
// driver unconverted, and it takes int64, not int).
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
