package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Filter selects objects for Objects.
type Filter struct {
	// Types keeps only these object types (empty: all).
	Types []string
	// IncludeDeleted also yields objects marked deleted.
	IncludeDeleted bool
}

// Objects calls fn with the latest state of every object of tenant that f selects, ordered by
// URL. The author's and editor's logins come from the principals of the object's last job.
func (s *Store) Objects(ctx context.Context, tenant string, f Filter, fn func(*Object) error) error {
	q := `SELECT o.tenant, o.object_type, o.object_id, o.url, o.name, o.parent_id, o.list_id, o.doc_id, o.size, o.created, o.modified,
		o.author, o.editor, COALESCE(a.login, ''), COALESCE(e.login, ''), o.version, o.version_count, o.versions, o.unique_perms, o.deleted,
		o.first_pass, o.last_pass, o.last_job
		FROM objects o
		LEFT JOIN principals a ON a.tenant = o.tenant AND a.job_id = o.last_job AND a.kind = 'user' AND a.principal_id = o.author
		LEFT JOIN principals e ON e.tenant = o.tenant AND e.job_id = o.last_job AND e.kind = 'user' AND e.principal_id = o.editor
		WHERE o.tenant = ?`
	args := []any{tenant}
	if !f.IncludeDeleted {
		q += ` AND o.deleted = 0`
	}
	if len(f.Types) > 0 {
		q += ` AND o.object_type IN (` + strings.TrimSuffix(strings.Repeat("?,", len(f.Types)), ",") + `)`
		for _, t := range f.Types {
			args = append(args, t)
		}
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(q+` ORDER BY o.url, o.object_type, o.object_id`), args...)
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
			&o.FirstPass, &o.LastPass, &o.LastJob); err != nil {
			return fmt.Errorf("inventory objects: %w", err)
		}
		if err := json.Unmarshal([]byte(versions), &o.Versions); err != nil {
			return fmt.Errorf("inventory objects: %s %s: versions: %w", o.Type, o.ID, err)
		}
		o.Created, o.Modified, o.UniquePermissions, o.Deleted = fromMicros(created), fromMicros(modified), unique != 0, deleted != 0
		if err := fn(&o); err != nil {
			return err
		}
	}
	return rows.Err()
}
