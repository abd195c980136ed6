package inventory

import (
	"slices"
	"sort"
)

// objectHistory is what the stored change sets of consecutive passes say about one object.
type objectHistory struct {
	typ, id string
	// existed: the object was live at the first pass's base (its first entry is not an addition).
	existed bool
	// gone: deleted as of the last entry; recreated: it existed, was deleted and came back.
	gone, recreated bool
	// url is the latest URL; fromURL the URL at the base (an existing object's first entry's, the
	// previous URL of a move).
	url, fromURL string
	// The fields of the moves, changes and permission changes, in the order of fieldOrder.
	moved, changed, permissions []string
}

// fieldOrder is the order a composed change lists its fields in: the compared columns, then the
// permission fields.
var fieldOrder = append(slices.Clone(compared), "unique_permissions", "role_assignments")

// compose folds the stored change sets of consecutive passes (entries in pass order) into one
// change set from the first pass's base to the last pass, per object (object_type, object_id),
// in order:
//
//   - added, then anything but deleted: added (with the latest URL); added then deleted: nothing;
//     added, deleted, added: added.
//   - deleted (of an object live at the base), then added: changed without fields (the object was
//     re-created: any field may differ), and moved when its URL is not the one at the base;
//     deleted at the end: deleted.
//   - changed then changed: changed with the union of the fields; moved then moved: moved with the
//     first prev_url and the union of the fields, and nothing when the object is back at its URL;
//     permissions then permissions: permissions with the union of the fields. A move, a change and
//     a permission change of one object stay separate entries, as in one pass.
//
// The composition reads the stored change sets, not the objects' states: a field changed and
// changed back is listed as changed.
func compose(entries []storedChange) []Change {
	byObject := map[[2]string]*objectHistory{}
	var order []*objectHistory
	for i := 0; i < len(entries); {
		// The entries of one object in one pass (a pass may have a move, a change and a permission change).
		j := i + 1
		for j < len(entries) && entries[j].Pass == entries[i].Pass && entries[j].ObjectType == entries[i].ObjectType && entries[j].ObjectID == entries[i].ObjectID {
			j++
		}
		key := [2]string{entries[i].ObjectType, entries[i].ObjectID}
		h := byObject[key]
		if h == nil {
			h = newHistory(entries[i:j])
			byObject[key] = h
			order = append(order, h)
		}
		h.apply(entries[i:j])
		i = j
	}
	out := []Change{}
	for _, h := range order {
		out = append(out, h.net()...)
	}
	sort.SliceStable(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.ObjectType != y.ObjectType {
			return x.ObjectType < y.ObjectType
		}
		if x.ObjectID != y.ObjectID {
			return x.ObjectID < y.ObjectID
		}
		return x.Kind < y.Kind
	})
	return out
}

// newHistory starts an object's history from its entries in the first pass that lists it.
func newHistory(first []storedChange) *objectHistory {
	h := &objectHistory{typ: first[0].ObjectType, id: first[0].ObjectID, existed: true, fromURL: first[0].URL}
	for _, e := range first {
		switch e.Kind {
		case Added:
			h.existed = false
		case Moved:
			h.fromURL = e.PrevURL
		}
	}
	return h
}

// apply folds the object's entries of one pass into its history.
func (h *objectHistory) apply(pass []storedChange) {
	for _, e := range pass {
		if e.Kind == Added { // an addition stands alone: anything beside it is part of the object's new state
			h.gone, h.url = false, e.URL
			if h.existed {
				h.recreated = true
			}
			return
		}
	}
	for _, e := range pass {
		h.url = e.URL
		switch e.Kind {
		case Deleted:
			h.gone = true
		case Moved:
			h.moved = union(h.moved, e.Fields)
		case Changed:
			h.changed = union(h.changed, e.Fields)
		case Permissions:
			h.permissions = union(h.permissions, e.Fields)
		}
	}
}

// net is the object's composed entries.
func (h *objectHistory) net() []Change {
	c := func(k ChangeKind, fields []string) Change {
		return Change{Kind: k, ObjectType: h.typ, ObjectID: h.id, URL: h.url, Fields: fields}
	}
	switch {
	case !h.existed && h.gone:
		return nil
	case !h.existed:
		return []Change{c(Added, nil)}
	case h.gone:
		return []Change{c(Deleted, nil)}
	}
	var out []Change
	if h.url != h.fromURL {
		m := c(Moved, h.moved)
		if len(m.Fields) == 0 { // re-created elsewhere: only the URL is known to differ
			m.Fields = []string{"url"}
		}
		m.PrevURL = h.fromURL
		out = append(out, m)
	}
	switch {
	case h.recreated:
		out = append(out, c(Changed, nil))
	case len(h.changed) > 0:
		out = append(out, c(Changed, h.changed))
	}
	if len(h.permissions) > 0 {
		out = append(out, c(Permissions, h.permissions))
	}
	return out
}

// union adds the fields of b missing from a, keeping fieldOrder (unknown fields last).
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, f := range b {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	rank := func(f string) int {
		if i := slices.Index(fieldOrder, f); i >= 0 {
			return i
		}
		return len(fieldOrder)
	}
	slices.SortStableFunc(out, func(x, y string) int { return rank(x) - rank(y) })
	return out
}
