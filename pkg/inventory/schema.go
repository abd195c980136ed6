package inventory

import "strings"

// table describes one upserted table: its key, its other columns, and what a conflict updates
// (empty: every non-key column from the new row).
type table struct {
	name  string
	stage string // PostgreSQL's temporary table the rows are copied into first
	key   []string
	cols  []string
	set   string
	// same is true in a conflict when the stored row is the new row's object: a key is a hash of
	// the object's identity (objectKey), and a conflict without it is a collision of two objects'
	// keys, which the upsert leaves unwritten and Ingest reports (KeyCollisionError). Empty: the
	// key is the identity itself.
	same string
	// shared are the columns whose value is usually the same in every row of a batch (the
	// tenant, the pass): SQLite binds such a value once a statement when it is (execRows).
	shared []string
}

func (t *table) allCols() []string { return append(append([]string(nil), t.key...), t.cols...) }

// compared are the object columns a change set compares, in the order a change lists them. Each
// has a prev_ twin holding its value as of the object's previous pass.
var compared = []string{"url", "name", "parent_id", "list_id", "size", "modified", "author", "editor", "version", "version_count"}

// located are the compared columns whose change is a move or a rename rather than an edit.
var located = map[string]bool{"url": true, "name": true, "parent_id": true, "list_id": true}

// tracked are the object columns whose previous value is kept: the compared ones, the hash, the
// deleted flag and the unique-permissions flag.
var tracked = append(append([]string(nil), compared...), "hash", "deleted", "unique_perms")

// newPassCond is true in a conflict when the stored row was last written by another pass: its
// current values then become its previous ones.
const newPassCond = "%[1]s.last_pass <> excluded.last_pass"

// keepPrev is the SET clause that moves a row's values into its prev_ columns on the first write
// of a new pass, and leaves them alone on a second write in the same pass (a redelivery).
func keepPrev(tbl string, cols []string) []string {
	cond := strings.ReplaceAll(newPassCond, "%[1]s", tbl)
	out := make([]string, 0, len(cols)+1)
	for _, c := range cols {
		out = append(out, "prev_"+c+" = CASE WHEN "+cond+" THEN "+tbl+"."+c+" ELSE "+tbl+".prev_"+c+" END")
	}
	return append(out, "prev_pass = CASE WHEN "+cond+" THEN "+tbl+".last_pass ELSE "+tbl+".prev_pass END")
}

func setExcluded(cols ...string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c + " = excluded." + c
	}
	return out
}

var (
	objectCols = []string{"scope", "url", "name", "parent_id", "list_id", "doc_id", "size", "created", "modified",
		"author", "editor", "version", "version_count", "versions", "hash", "deleted", "unique_perms", "first_pass", "last_pass", "last_job"}

	// objectsTable: a live object's record replaces every column but first_pass and unique_perms
	// (End derives that one from the pass's role assignments). Its key is okey, a 64-bit hash of
	// the identity (tenant, object_type, object_id) that the row also holds (objectKey).
	objectShared   = []string{"tenant", "scope", "deleted", "unique_perms", "first_pass", "last_pass", "last_job"}
	objectIdentity = "objects.tenant = excluded.tenant AND objects.object_type = excluded.object_type AND objects.object_id = excluded.object_id"

	objectsTable = table{name: "objects", stage: "stage_objects", key: []string{"okey"},
		cols: append([]string{"tenant", "object_type", "object_id"}, objectCols...), shared: objectShared, same: objectIdentity,
		set: strings.Join(append(keepPrev("objects", tracked), setExcluded("scope", "url", "name", "parent_id", "list_id", "doc_id",
			"size", "created", "modified", "author", "editor", "version", "version_count", "versions", "hash", "deleted", "last_pass", "last_job")...), ", ")}

	// deletedTable: a deletion (IsDeleted) keeps the object's last known state and marks it.
	deletedTable = table{name: "objects", stage: "stage_deleted", key: objectsTable.key, cols: objectsTable.cols, shared: objectShared, same: objectIdentity,
		set: strings.Join(append(keepPrev("objects", tracked), setExcluded("scope", "deleted", "last_pass", "last_job")...), ", ")}

	principalsTable = table{name: "principals", stage: "stage_principals", key: []string{"tenant", "job_id", "kind", "principal_id"},
		cols: []string{"name", "login", "email", "site_admin", "last_pass"}, shared: []string{"tenant", "job_id", "last_pass"}}

	rolesTable = table{name: "roles", stage: "stage_roles", key: []string{"tenant", "job_id", "role_id"},
		cols: []string{"title", "perm_mask", "last_pass"}, shared: []string{"tenant", "job_id", "last_pass"}}

	roleAssignmentsTable = table{name: "role_assignments", stage: "stage_role_assignments", key: []string{"tenant", "scope_id"}, shared: []string{"tenant", "last_pass", "last_job"},
		cols: []string{"object_id", "object_url", "assignments", "hash", "last_pass", "last_job"},
		set: strings.Join(append(keepPrev("role_assignments", []string{"hash"}),
			setExcluded("object_id", "object_url", "assignments", "hash", "last_pass", "last_job")...), ", ")}

	changesTable = table{name: "changes", stage: "stage_changes", key: []string{"pass_id", "kind", "object_type", "object_id"},
		cols: []string{"tenant", "url", "prev_url", "fields"}, shared: []string{"pass_id", "tenant"}}
)

// schema is the DDL in the dialect's types (text, the passes table's generated key, NOT NULL).
// Booleans are 0/1 integers and times UTC microseconds since 1970, so both backends read them
// the same way.
func schema(d dialect) []string {
	out := schema0(d.serialPK)
	for i, q := range out {
		out[i] = strings.ReplaceAll(strings.ReplaceAll(q, " TEXT", " "+d.text), " NOT NULL", d.notNull)
	}
	return out
}

func schema0(serialPK string) []string {
	prevObj := ""
	for _, c := range tracked {
		typ := "BIGINT"
		if c == "url" || c == "name" || c == "parent_id" || c == "list_id" || c == "version" {
			typ = "TEXT"
		}
		prevObj += ", prev_" + c + " " + typ
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS passes (
			pass_id ` + serialPK + `,
			tenant TEXT NOT NULL, scope TEXT NOT NULL, plan_ids TEXT NOT NULL, kind TEXT NOT NULL,
			permissions INTEGER NOT NULL, base_pass BIGINT NOT NULL,
			started BIGINT NOT NULL, ended BIGINT NOT NULL DEFAULT 0, complete INTEGER NOT NULL DEFAULT 0,
			records BIGINT NOT NULL DEFAULT 0, objects BIGINT NOT NULL DEFAULT 0, deleted BIGINT NOT NULL DEFAULT 0,
			versions BIGINT NOT NULL DEFAULT 0, principals BIGINT NOT NULL DEFAULT 0, role_assignments BIGINT NOT NULL DEFAULT 0,
			other BIGINT NOT NULL DEFAULT 0, changes BIGINT NOT NULL DEFAULT 0)`,
		// objects is keyed by okey, a 64-bit hash of the identity (objectKey), not by the identity:
		// the key's index is written at random (GUIDs), and with 80-byte text keys it outgrew the
		// page cache at half a million objects, every commit rewriting most of its leaves; with
		// 8-byte keys it is a sixth of that size (docs/inventory.md, "Sizing"). BIGINT, not
		// INTEGER: an INTEGER PRIMARY KEY would be SQLite's rowid, placing every row at random.
		`CREATE TABLE IF NOT EXISTS objects (
			okey BIGINT NOT NULL, tenant TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL, scope TEXT NOT NULL,
			url TEXT NOT NULL, name TEXT NOT NULL, parent_id TEXT NOT NULL, list_id TEXT NOT NULL, doc_id TEXT NOT NULL,
			size BIGINT NOT NULL, created BIGINT NOT NULL, modified BIGINT NOT NULL, author BIGINT NOT NULL, editor BIGINT NOT NULL,
			version TEXT NOT NULL, version_count BIGINT NOT NULL, versions TEXT NOT NULL, hash BIGINT NOT NULL, deleted INTEGER NOT NULL,
			unique_perms INTEGER NOT NULL, first_pass BIGINT NOT NULL, last_pass BIGINT NOT NULL, last_job TEXT NOT NULL,
			prev_pass BIGINT` + prevObj + `)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS objects_key ON objects (okey)`,
		// End finds the objects of a pass flagged unique-permissions (to clear the flag of those no
		// role assignment names any more) without scanning the tenant: a partial index holds only
		// flagged rows, so the ingest of the others does not pay for it.
		`CREATE INDEX IF NOT EXISTS objects_unique_perms ON objects (tenant, last_pass) WHERE unique_perms = 1`,
		// End finds the objects a pass wrote (its change set) and those of its scope it did not
		// (a full pass's deletions) by this index instead of scanning the tenant: an incremental
		// pass of a thousand records ended in seconds, a scan of the tenant's objects whatever its
		// size. Its keys grow at the end (a pass's id is the largest), so the ingest pays little.
		`CREATE INDEX IF NOT EXISTS objects_pass ON objects (tenant, scope, last_pass)`,
		`CREATE TABLE IF NOT EXISTS principals (
			tenant TEXT NOT NULL, job_id TEXT NOT NULL, kind TEXT NOT NULL, principal_id BIGINT NOT NULL,
			name TEXT NOT NULL, login TEXT NOT NULL, email TEXT NOT NULL, site_admin INTEGER NOT NULL, last_pass BIGINT NOT NULL,
			PRIMARY KEY (tenant, job_id, kind, principal_id))`,
		`CREATE TABLE IF NOT EXISTS roles (
			tenant TEXT NOT NULL, job_id TEXT NOT NULL, role_id BIGINT NOT NULL, title TEXT NOT NULL, perm_mask TEXT NOT NULL,
			last_pass BIGINT NOT NULL, PRIMARY KEY (tenant, job_id, role_id))`,
		`CREATE TABLE IF NOT EXISTS role_assignments (
			tenant TEXT NOT NULL, scope_id TEXT NOT NULL, object_id TEXT NOT NULL, object_url TEXT NOT NULL,
			assignments TEXT NOT NULL, hash BIGINT NOT NULL, last_pass BIGINT NOT NULL, last_job TEXT NOT NULL,
			prev_pass BIGINT, prev_hash BIGINT,
			PRIMARY KEY (tenant, scope_id))`,
		`CREATE INDEX IF NOT EXISTS role_assignments_object ON role_assignments (tenant, object_id, last_pass)`,
		`CREATE TABLE IF NOT EXISTS changes (
			pass_id BIGINT NOT NULL, kind TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL,
			tenant TEXT NOT NULL, url TEXT NOT NULL, prev_url TEXT NOT NULL, fields TEXT NOT NULL,
			PRIMARY KEY (pass_id, kind, object_type, object_id))`,
	}
}
