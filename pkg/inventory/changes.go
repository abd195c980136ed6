package inventory

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ChangeKind is what happened to an object between two passes.
type ChangeKind string

// Change kinds.
const (
	Added       ChangeKind = "added"
	Changed     ChangeKind = "changed"     // compared fields differ (Fields names them)
	Deleted     ChangeKind = "deleted"     // IsDeleted in an incremental pass, or unseen by a complete full pass
	Moved       ChangeKind = "moved"       // same id, new URL: a move or a rename (Fields: url, name, parent_id, list_id)
	Permissions ChangeKind = "permissions" // unique_permissions flag or role_assignments differ
)

// Change is one entry of a change set.
type Change struct {
	Kind       ChangeKind `json:"kind"`
	ObjectType string     `json:"object_type"`
	ObjectID   string     `json:"object_id"`
	URL        string     `json:"url"`
	PrevURL    string     `json:"prev_url,omitempty"`
	Fields     []string   `json:"fields,omitempty"`
}

// ChangeSet is what changed in a tenant from one pass to the next.
type ChangeSet struct {
	Tenant  string   `json:"tenant"`
	From    int64    `json:"from_pass"`
	To      int64    `json:"to_pass"`
	Changes []Change `json:"changes"`
}

// Changes returns the change set of pass to against from. to 0 means the latest pass; from 0
// means to's base (the previous pass of its tenant and scope), the only from a stored change set
// is against: any other from, or a to that is the first pass of its tenant and scope, is refused
// with an *ArgError. Errors: *UnknownPassError for a pass
// the inventory does not hold, *TenantMismatchError when from and to are of different tenants,
// ErrIncompletePass when to did not end complete (or has not ended), ErrNoPass for an empty
// inventory.
func (s *Store) Changes(ctx context.Context, from, to int64) (*ChangeSet, error) {
	if to == 0 {
		var last *int64
		if err := s.db.QueryRowContext(ctx, `SELECT MAX(pass_id) FROM passes`).Scan(&last); err != nil {
			return nil, fmt.Errorf("latest pass: %w", err)
		}
		if last == nil {
			return nil, ErrNoPass
		}
		to = *last
	}
	tp, err := s.PassByID(ctx, to)
	if err != nil {
		return nil, namePass(err, "to")
	}
	if from != 0 {
		fp, err := s.PassByID(ctx, from)
		if err != nil {
			return nil, namePass(err, "from")
		}
		if fp.Tenant != tp.Tenant {
			return nil, &TenantMismatchError{From: from, To: to, FromTenant: fp.Tenant, ToTenant: tp.Tenant}
		}
		if from != tp.Base {
			return nil, &ArgError{Arg: "from", Reason: fmt.Sprintf("pass %d's change set is against pass %d (the previous pass of tenant %q, scope %q), not pass %d",
				to, tp.Base, tp.Tenant, tp.Scope, from)}
		}
	}
	if tp.Open() || !tp.Complete {
		return nil, fmt.Errorf("change set of pass %d: %w", to, ErrIncompletePass)
	}
	if tp.Base == 0 {
		return nil, &ArgError{Arg: "to", Reason: fmt.Sprintf("pass %d is the first of tenant %q, scope %q: there is no earlier pass to compare it with",
			to, tp.Tenant, tp.Scope)}
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT kind, object_type, object_id, url, prev_url, fields FROM changes
		WHERE pass_id = ? ORDER BY object_type, object_id, kind`), to)
	if err != nil {
		return nil, fmt.Errorf("change set of pass %d: %w", to, err)
	}
	defer rows.Close()
	cs := &ChangeSet{Tenant: tp.Tenant, From: tp.Base, To: to, Changes: []Change{}}
	for rows.Next() {
		var c Change
		var kind, fields string
		if err := rows.Scan(&kind, &c.ObjectType, &c.ObjectID, &c.URL, &c.PrevURL, &fields); err != nil {
			return nil, fmt.Errorf("change set of pass %d: %w", to, err)
		}
		c.Kind = ChangeKind(kind)
		if fields != "" {
			c.Fields = strings.Split(fields, ",")
		}
		cs.Changes = append(cs.Changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("change set of pass %d: %w", to, err)
	}
	return cs, nil
}

func namePass(err error, arg string) error {
	var up *UnknownPassError
	if errors.As(err, &up) {
		up.Arg = arg
	}
	return err
}

// Count is how many changes are of kind k.
func (cs *ChangeSet) Count(k ChangeKind) int {
	n := 0
	for _, c := range cs.Changes {
		if c.Kind == k {
			n++
		}
	}
	return n
}

// CSVHeader is the first row WriteCSV writes.
var CSVHeader = []string{"tenant", "from_pass", "to_pass", "kind", "object_type", "object_id", "url", "prev_url", "fields"}

// WriteCSV writes the change set as CSV (RFC 4180), one change a row after CSVHeader; fields are
// separated by ';' within their cell.
func (cs *ChangeSet) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	from, to := strconv.FormatInt(cs.From, 10), strconv.FormatInt(cs.To, 10)
	for _, c := range cs.Changes {
		if err := cw.Write([]string{cs.Tenant, from, to, string(c.Kind), c.ObjectType, c.ObjectID, c.URL, c.PrevURL, strings.Join(c.Fields, ";")}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the change set as one indented JSON document.
func (cs *ChangeSet) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(cs)
}
