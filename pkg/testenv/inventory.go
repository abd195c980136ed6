package testenv

import (
	"context"
	"fmt"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// InventoryPass writes a site of tn into store as the pipeline would: one complete full pass of
// tenant name, scope site, holding what one AMR job per group of targets yields (ExportRecords,
// with versions, permissions and security).
func InventoryPass(ctx context.Context, store *inventory.Store, tn *tenant.Tenant, name, site string, jobs ...[]string) error {
	opts := tenant.ReadOptions{IncludeVersions: true, IncludePermission: true, IncludeSecurity: true}
	pass, err := store.BeginPass(ctx, inventory.PassInfo{Tenant: name, Scope: site, Kind: inventory.Full, Permissions: true})
	if err != nil {
		return err
	}
	for i, targets := range jobs {
		recs, err := ExportRecords(ctx, tn, fmt.Sprintf("%s-job-%d", name, i), targets, opts)
		if err != nil {
			return err
		}
		if err := pass.Ingest(ctx, recs); err != nil {
			return err
		}
	}
	return pass.End(ctx, true)
}
