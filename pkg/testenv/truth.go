package testenv

// This file is the ground truth side of the end-to-end checks: what a plan must yield downstream,
// read straight from the simulated tenant, and how two tallies of objects differ.

import (
	"context"
	"fmt"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// Object is one object a plan must yield downstream.
type Object struct{ Type, ID string }

// ContentTypes are the SPObject types compared between the ground truth and the records: the
// tenant's content. Role definitions and role assignments are per job by nature.
var ContentTypes = map[string]bool{
	string(tenant.TypeList): true, string(tenant.TypeDocumentLibrary): true, string(tenant.TypeFolder): true,
	string(tenant.TypeFile): true, string(tenant.TypeListItem): true,
}

// Truth is what a plan over targets (server-relative or absolute URLs) must yield downstream, read
// straight from the tenant: every content object under the targets, once. fn, if not nil, sees
// each of them (with its URL), e.g. to tell which job a missing object belonged to.
func Truth(ctx context.Context, tn *tenant.Tenant, targets []string, opts tenant.ReadOptions, fn func(*tenant.Object)) (map[Object]int, error) {
	ts, err := resolveAll(tn, targets)
	if err != nil {
		return nil, err
	}
	out := map[Object]int{}
	err = tn.Walk(ctx, ts, opts, func(o *tenant.Object) error {
		if ContentTypes[string(o.Type)] {
			out[Object{string(o.Type), o.ID}]++
			if fn != nil {
				fn(o)
			}
		}
		return nil
	})
	return out, err
}

// resolveAll resolves the URLs of a job or plan on the tenant.
func resolveAll(tn *tenant.Tenant, urls []string) ([]tenant.Target, error) {
	ts := make([]tenant.Target, 0, len(urls))
	for _, u := range urls {
		t, err := tn.Resolve(u)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", u, err)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// TenantOptions are a job's or a plan's read options as the simulated tenant takes them.
func TenantOptions(o *amrpipev1.ReadOptions) tenant.ReadOptions {
	return tenant.ReadOptions{IncludeVersions: o.GetIncludeVersions(), IncludePermission: o.GetIncludePermission(),
		IncludeSecurity: o.GetIncludeSecurity(), IncludeExtendedMetadata: o.GetIncludeExtendedMetadata(),
		IncludeDirectDescendantsOnly: o.GetIncludeDirectDescendantsOnly()}
}

// Diff describes how got differs from want: missing, unexpected and duplicated objects.
func Diff(got, want map[Object]int) error {
	var missing, extra, dup []Object
	for o := range want {
		if got[o] == 0 {
			missing = append(missing, o)
		}
	}
	for o, n := range got {
		switch {
		case want[o] == 0:
			extra = append(extra, o)
		case n > 1:
			dup = append(dup, o)
		}
	}
	if len(missing)+len(extra)+len(dup) == 0 {
		return nil
	}
	return fmt.Errorf("downstream vs ground truth (%d objects): %d missing %v, %d unexpected %v, %d duplicated %v",
		len(want), len(missing), first(missing), len(extra), first(extra), len(dup), first(dup))
}

func first(s []Object) []Object { return s[:min(3, len(s))] }
