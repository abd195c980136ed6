package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Filter selects objects for Objects.
type Filter struct {
	// Types keeps only these object types (empty: all).
	Types []string
	// IncludeDeleted also yields objects marked deleted.
	IncludeDeleted bool
	// Under keeps only the objects whose URL is one of these server-relative paths or below one,
	// at a path-segment boundary, ignoring ASCII case (empty: all).
	Under []string
}

// under reports whether url is one of f.Under or below one.
func (f Filter) under(url string) bool {
	if len(f.Under) == 0 {
		return true
	}
	for _, p := range f.Under {
		p = strings.TrimRight(p, "/")
		if len(url) >= len(p) && strings.EqualFold(url[:len(p)], p) && (len(url) == len(p) || url[len(p)] == '/' || p == "") {
			return true
		}
	}
	return false
}

// Objects calls fn with the latest state of every object of tenant that f selects, in no
// particular order (sorting a tenant's rows by URL cost more than reading them; callers that
// report sort their results). The author's and editor's logins come from the principals of the
// object's last job (a job that listed none leaves them empty: Names resolves them further).
func (s *Store) Objects(ctx context.Context, tenant string, f Filter, fn func(*Object) error) error {
	q := `SELECT o.tenant, o.object_type, o.object_id, o.url, o.name, o.parent_id, o.list_id, o.doc_id, o.size, o.created, o.modified,
		o.author, o.editor, COALESCE(a.login, ''), COALESCE(e.login, ''), o.version, o.version_count, o.versions, o.unique_perms, o.deleted,
		o.first_pass, o.last_pass, o.last_job, o.scope
		FROM objects o` + s.d.tenantScan + `
		LEFT JOIN principals a ON a.tenant = o.tenant AND a.job_id = o.last_job AND a.kind = 'user' AND a.principal_id = o.author
		LEFT JOIN principals e ON e.tenant = o.tenant AND e.job_id = o.last_job AND e.kind = 'user' AND e.principal_id = o.editor
		WHERE o.tenant = ?`
	args := []any{tenant}
	if !f.IncludeDeleted {
		q += ` AND o.deleted = 0`
	}
	if len(f.Types) > 0 {
		q += ` AND o.object_type IN (` + params(len(f.Types)) + `)`
		for _, t := range f.Types {
			args = append(args, t)
		}
	}
	if len(f.Under) > 0 {
		// A prefix test in SQL spares sorting and reading the rest; f.under checks the boundary.
		var conds []string
		for _, p := range f.Under {
			p = strings.TrimRight(p, "/")
			conds = append(conds, `LOWER(SUBSTR(o.url, 1, ?)) = ?`)
			args = append(args, len(p), strings.ToLower(p))
		}
		q += ` AND (` + strings.Join(conds, ` OR `) + `)`
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		return fmt.Errorf("inventory objects: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var o Object
		var created, modified int64
		var unique, deleted int
		var versions string
		if err := rows.Scan(&o.Tenant, &o.Type, &o.ID, &o.URL, &o.Name, &o.ParentID, &o.ListID, &o.DocID, &o.Size, &created, &modified,
			&o.Author, &o.Editor, &o.AuthorLogin, &o.EditorLogin, &o.Version, &o.VersionCount, &versions, &unique, &deleted,
			&o.FirstPass, &o.LastPass, &o.LastJob, &o.Scope); err != nil {
			return fmt.Errorf("inventory objects: %w", err)
		}
		if err := json.Unmarshal([]byte(versions), &o.Versions); err != nil {
			return fmt.Errorf("inventory objects: %s %s: versions: %w", o.Type, o.ID, err)
		}
		o.Created, o.Modified, o.UniquePermissions, o.Deleted = fromMicros(created), fromMicros(modified), unique != 0, deleted != 0
		if !f.under(o.URL) {
			continue
		}
		if err := fn(&o); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Grant is one grant of an object's unique permissions: a principal and a role, with their names
// as Names resolves them for the role assignment's job and pass ("" when it cannot).
type Grant struct {
	PrincipalID int64
	// Principal is a user's login or a group's name.
	Principal string
	RoleID    int64
	Role      string
}

// Grants calls fn, for every object of tenant whose latest role assignment names it, with that
// assignment's grants (an empty slice for a scope that grants nothing), ordered by object id.
// An object's latest role assignment is the one its latest pass wrote; whether the object has
// unique permissions now is Object.UniquePermissions.
func (s *Store) Grants(ctx context.Context, tenant string, fn func(objectID string, grants []Grant) error) error {
	nm, err := s.Names(ctx, tenant)
	if err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT object_id, assignments, last_job, last_pass FROM role_assignments
		WHERE tenant = ? ORDER BY object_id, last_pass DESC, scope_id`), tenant)
	if err != nil {
		return fmt.Errorf("inventory grants: %w", err)
	}
	defer rows.Close()
	last := "\x00"
	for rows.Next() {
		var id, assigns, job string
		var pass int64
		if err := rows.Scan(&id, &assigns, &job, &pass); err != nil {
			return fmt.Errorf("inventory grants: %w", err)
		}
		if id == last { // an older scope of the same object
			continue
		}
		last = id
		scope := nm.scopes[pass]
		grants := []Grant{}
		for _, pair := range strings.Split(assigns, ",") {
			if pair == "" {
				continue
			}
			role, principal, ok := strings.Cut(pair, ":")
			rid, err1 := strconv.ParseInt(role, 10, 64)
			pid, err2 := strconv.ParseInt(principal, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				return fmt.Errorf("inventory grants: object %s: assignment %q is not role:principal", id, pair)
			}
			g := Grant{PrincipalID: pid, RoleID: rid, Role: nm.Role(job, scope, rid)}
			if g.Principal = nm.Login(job, scope, pid); g.Principal == "" {
				g.Principal = nm.Group(job, scope, pid)
			}
			grants = append(grants, g)
		}
		if err := fn(id, grants); err != nil {
			return err
		}
	}
	return rows.Err()
}

const (
	kindUser = iota
	kindGroup
	kindRole
)

// Names resolves a tenant's principal and role ids as a job saw them. Ids are per site
// collection, and a pipeline publishes a site collection's principals once, from the security job
// of its plan, so a content job usually lists none. An id resolves through the job's own
// principals and roles when it listed any; else, when jobs of passes of the same scope (a plan's
// site) listed any, through the name they agree on; else through the name every job of the tenant
// agrees on. An id the chosen jobs do not name, or name differently, resolves to "".
type Names struct {
	byJob   map[string]*nameSet
	byScope map[string]*nameSet
	all     *nameSet
	scopes  map[int64]string // pass → scope
}

// nameSet holds names by kind and id, and the ids that two jobs name differently.
type nameSet struct {
	names [3]map[int64]string
	clash [3]map[int64]bool
}

func newNameSet() *nameSet {
	n := &nameSet{}
	for k := range n.names {
		n.names[k], n.clash[k] = map[int64]string{}, map[int64]bool{}
	}
	return n
}

func (n *nameSet) add(kind int, id int64, v string) {
	if old, ok := n.names[kind][id]; ok && old != v {
		n.clash[kind][id] = true
	}
	n.names[kind][id] = v
}

func (n *nameSet) lookup(kind int, id int64) (string, bool) {
	if n == nil || n.clash[kind][id] {
		return "", false
	}
	v, ok := n.names[kind][id]
	return v, ok
}

func (n *Names) add(job string, pass int64, kind int, id int64, v string) {
	set := func(m map[string]*nameSet, k string) *nameSet {
		if m[k] == nil {
			m[k] = newNameSet()
		}
		return m[k]
	}
	set(n.byJob, job).add(kind, id, v)
	set(n.byScope, n.scopes[pass]).add(kind, id, v)
	n.all.add(kind, id, v)
}

func (n *Names) name(job, scope string, kind int, id int64) string {
	set := n.all
	if j := n.byJob[job]; j != nil && len(j.names[kindUser])+len(j.names[kindGroup]) > 0 {
		set = j
	} else if sc := n.byScope[scope]; sc != nil {
		set = sc
	}
	v, _ := set.lookup(kind, id)
	return v
}

// Login is the login of user id as job, of a pass of scope, saw it.
func (n *Names) Login(job, scope string, id int64) string { return n.name(job, scope, kindUser, id) }

// Group is the name of group id as job, of a pass of scope, saw it.
func (n *Names) Group(job, scope string, id int64) string { return n.name(job, scope, kindGroup, id) }

// Role is the title of role id as job, of a pass of scope, saw it.
func (n *Names) Role(job, scope string, id int64) string { return n.name(job, scope, kindRole, id) }

// Names reads the principals and roles of tenant.
func (s *Store) Names(ctx context.Context, tenant string) (*Names, error) {
	nm := &Names{byJob: map[string]*nameSet{}, byScope: map[string]*nameSet{}, all: newNameSet(), scopes: map[int64]string{}}
	passes, err := s.Passes(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range passes {
		if p.Tenant == tenant {
			nm.scopes[p.ID] = p.Scope
		}
	}
	for _, q := range []struct {
		sql  string
		kind func(string) int
	}{
		{`SELECT job_id, last_pass, kind, principal_id, CASE WHEN kind = 'user' THEN login ELSE name END FROM principals WHERE tenant = ?`,
			func(k string) int {
				if k == "user" {
					return kindUser
				}
				return kindGroup
			}},
		{`SELECT job_id, last_pass, 'role', role_id, title FROM roles WHERE tenant = ?`, func(string) int { return kindRole }},
	} {
		rows, err := s.db.QueryContext(ctx, s.d.rebind(q.sql), tenant)
		if err != nil {
			return nil, fmt.Errorf("inventory principals: %w", err)
		}
		for rows.Next() {
			var job, kind, v string
			var pass, id int64
			if err := rows.Scan(&job, &pass, &kind, &id, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("inventory principals: %w", err)
			}
			nm.add(job, pass, q.kind(kind), id, v)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("inventory principals: %w", err)
		}
	}
	return nm, nil
}
