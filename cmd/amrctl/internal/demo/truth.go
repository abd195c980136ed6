package demo

import (
	"fmt"
	"slices"
	"strings"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/validate"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// The simulator's account of what it did is the ground truth the demo checks its outputs against.

// expectedChanges is the change set the simulator's changes under the plans' targets make, as
// "kind type id" lines: per object its net effect (an added object stays added), and for a file
// its list item (DocType File, whose DocId is the file's id) beside it. n counts the changes.
func expectedChanges(made []tenant.Change, plans []*amrpipev1.PlanRequest) (want []string, n int) {
	var targets []string
	for _, p := range plans {
		for _, t := range p.GetTargets() {
			targets = append(targets, pathOf(t))
		}
	}
	kinds := map[tenant.ChangeKind]inventory.ChangeKind{tenant.ChangeAdd: inventory.Added, tenant.ChangeUpdate: inventory.Changed, tenant.ChangeDelete: inventory.Deleted}
	type object struct{ typ, id string }
	net := map[object]inventory.ChangeKind{}
	for _, c := range made {
		if !slices.ContainsFunc(targets, func(t string) bool { return under(c.ServerRelativeURL, t) }) {
			continue
		}
		n++
		objs := []object{{string(c.ObjectType), c.ObjectID}}
		if c.ItemID != "" {
			objs = append(objs, object{string(tenant.TypeListItem), c.ItemID})
		}
		for _, o := range objs {
			if net[o] != inventory.Added {
				net[o] = kinds[c.Kind]
			}
		}
	}
	for o, k := range net {
		want = append(want, string(k)+" "+o.typ+" "+o.id)
	}
	slices.Sort(want)
	return want, n
}

// under reports whether u is path p or below it.
func under(u, p string) bool {
	return strings.EqualFold(u, p) || len(u) > len(p) && strings.EqualFold(u[:len(p)], p) && u[len(p)] == '/'
}

// compareChanges is "" when the change sets' entries are exactly want, else what differs.
func compareChanges(got []inventory.Change, want []string) string {
	lines := make([]string, 0, len(got))
	for _, c := range got {
		lines = append(lines, string(c.Kind)+" "+c.ObjectType+" "+c.ObjectID)
	}
	slices.Sort(lines)
	return setDiff(lines, want, "in the change set, not made by the simulator", "made by the simulator, not in the change set")
}

// finding is one failed check: the check and the item's URL (the destination's for an extra
// item, the source's otherwise).
func findingKey(c validate.Check, url string) string { return string(c) + " " + url }

// compareFindings is "" when the validation's failures are exactly the seeded differences (a
// renamed file is missing at its old URL and extra at its new one), else what differs.
func compareFindings(res *validate.Result, seeded []tenant.Difference) string {
	var want []string
	for _, d := range seeded {
		switch d.Kind {
		case tenant.DiffMissing:
			want = append(want, findingKey(validate.CheckMissing, d.SourceURL))
		case tenant.DiffRenamed:
			want = append(want, findingKey(validate.CheckMissing, d.SourceURL), findingKey(validate.CheckExtra, d.DestinationURL))
		case tenant.DiffSize:
			want = append(want, findingKey(validate.CheckSize, d.SourceURL))
		case tenant.DiffVersions:
			want = append(want, findingKey(validate.CheckVersions, d.SourceURL))
		case tenant.DiffModified:
			want = append(want, findingKey(validate.CheckModified, d.SourceURL))
		case tenant.DiffEditor:
			want = append(want, findingKey(validate.CheckEditor, d.SourceURL))
		case tenant.DiffPermissions, tenant.DiffPrincipal:
			want = append(want, findingKey(validate.CheckPermissions, d.SourceURL))
		}
	}
	var got []string
	for _, it := range res.Items {
		for _, f := range it.Failures {
			u := it.SourceURL
			if f.Check == validate.CheckExtra {
				u = it.DestinationURL
			}
			got = append(got, findingKey(f.Check, u))
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	return setDiff(slices.Compact(got), slices.Compact(want), "found, not seeded", "seeded, not found")
}

// setDiff lists the lines of sorted got not in sorted want and the other way round (at most 10
// of each), or "" when they are equal.
func setDiff(got, want []string, extraLabel, missingLabel string) string {
	if slices.Equal(got, want) {
		return ""
	}
	has := func(s []string, v string) bool { _, ok := slices.BinarySearch(s, v); return ok }
	var b strings.Builder
	for _, side := range []struct {
		label    string
		from, in []string
	}{{extraLabel, got, want}, {missingLabel, want, got}} {
		var d []string
		for _, v := range side.from {
			if !has(side.in, v) {
				d = append(d, v)
			}
		}
		if len(d) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %d %s:", len(d), side.label)
		for _, v := range d[:min(len(d), 10)] {
			fmt.Fprintf(&b, "\n    %s", v)
		}
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}
