package inventory

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// ChangeKind is what happened to an object between two passes.
type ChangeKind string

// Change kinds.
const (
	Added       ChangeKind = "added"
	Changed     ChangeKind = "changed"     // compared fields differ (Fields names them; none when composed over a deletion and a re-creation)
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

// ChangeSet is what changed in a tenant from one pass to a later one of the same scope (the next,
// or further, composed).
type ChangeSet struct {
	Tenant  string   `json:"tenant"`
	From    int64    `json:"from_pass"`
	To      int64    `json:"to_pass"`
	Changes []Change `json:"changes"`
}

// Changes returns the change set of pass to against from. to 0 means the latest pass; from 0
// means to's base (the previous pass of its tenant and scope), whose change set is stored. A from
// further back, an earlier pass of the same tenant and scope (an ancestor in to's chain of bases),
// yields the stored change sets of the passes after from up to to, composed per object (see
// compose). Errors: *UnknownPassError for a pass the inventory does not hold,
// *TenantMismatchError when from and to are of different tenants, *ArgError for a from of another
// scope, a from that is not earlier than to, or a to that is the first pass of its tenant and
// scope, ErrIncompletePass when to or a pass between from and to did not end complete (or has not
// ended), ErrNoPass for an empty inventory.
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
	var chain []int64 // the passes after from up to to, oldest first, when from is further back than to's base
	if from != 0 {
		fp, err := s.PassByID(ctx, from)
		if err != nil {
			return nil, namePass(err, "from")
		}
		if fp.Tenant != tp.Tenant {
			return nil, &TenantMismatchError{From: from, To: to, FromTenant: fp.Tenant, ToTenant: tp.Tenant}
		}
		if from != tp.Base {
			if chain, err = s.chain(ctx, fp, tp); err != nil {
				return nil, err
			}
		}
	}
	if tp.Open() || !tp.Complete {
		return nil, fmt.Errorf("change set of pass %d: %w", to, ErrIncompletePass)
	}
	if tp.Base == 0 {
		return nil, &ArgError{Arg: "to", Reason: fmt.Sprintf("pass %d is the first of tenant %q, scope %q: there is no earlier pass to compare it with",
			to, tp.Tenant, tp.Scope)}
	}
	if chain != nil {
		entries, err := s.storedChanges(ctx, chain)
		if err != nil {
			return nil, fmt.Errorf("change sets of passes %d to %d: %w", chain[0], to, err)
		}
		return &ChangeSet{Tenant: tp.Tenant, From: from, To: to, Changes: compose(entries)}, nil
	}
	entries, err := s.storedChanges(ctx, []int64{to})
	if err != nil {
		return nil, fmt.Errorf("change set of pass %d: %w", to, err)
	}
	cs := &ChangeSet{Tenant: tp.Tenant, From: tp.Base, To: to, Changes: []Change{}}
	for _, e := range entries {
		cs.Changes = append(cs.Changes, e.Change)
	}
	return cs, nil
}

// chain returns the passes after from up to to, following to's bases back to from: every one must
// have ended complete. from must be an earlier pass of to's scope.
func (s *Store) chain(ctx context.Context, from, to PassInfo) ([]int64, error) {
	if from.Scope != to.Scope {
		return nil, &ArgError{Arg: "from", Reason: fmt.Sprintf("pass %d is of scope %q and pass %d of scope %q: a change set compares passes of one scope",
			from.ID, from.Scope, to.ID, to.Scope)}
	}
	if from.ID >= to.ID {
		return nil, &ArgError{Arg: "from", Reason: fmt.Sprintf("pass %d is not earlier than pass %d", from.ID, to.ID)}
	}
	chain := []int64{to.ID}
	for p := to; p.Base != from.ID; {
		if p.Base == 0 || p.Base < from.ID {
			return nil, &ArgError{Arg: "from", Reason: fmt.Sprintf("pass %d is not one of the passes pass %d's change sets go back through (tenant %q, scope %q)",
				from.ID, to.ID, to.Tenant, to.Scope)}
		}
		base, err := s.PassByID(ctx, p.Base)
		if err != nil {
			return nil, fmt.Errorf("base of pass %d: %w", p.ID, err)
		}
		if base.Open() || !base.Complete {
			return nil, fmt.Errorf("change set from pass %d to pass %d: pass %d in between did not end complete: %w", from.ID, to.ID, base.ID, ErrIncompletePass)
		}
		chain = append(chain, base.ID)
		p = base
	}
	slices.Reverse(chain)
	return chain, nil
}

// storedChange is an entry of a pass's stored change set.
type storedChange struct {
	Pass int64
	Change
}

// storedChanges reads the stored change sets of passes, in pass order, then by object and kind.
func (s *Store) storedChanges(ctx context.Context, passes []int64) ([]storedChange, error) {
	args := make([]any, len(passes))
	for i, p := range passes {
		args[i] = p
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT pass_id, kind, object_type, object_id, url, prev_url, fields FROM changes
		WHERE pass_id IN (`+params(len(passes))+`) ORDER BY pass_id, object_type, object_id, kind`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedChange
	for rows.Next() {
		var c storedChange
		var kind, fields string
		if err := rows.Scan(&c.Pass, &kind, &c.ObjectType, &c.ObjectID, &c.URL, &c.PrevURL, &fields); err != nil {
			return nil, err
		}
		c.Kind = ChangeKind(kind)
		if fields != "" {
			c.Fields = strings.Split(fields, ",")
		}
		out = append(out, c)
	}
	return out, rows.Err()
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
