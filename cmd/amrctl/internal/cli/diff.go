package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/downstream/changes"
	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// diffFormats are the outputs of `amrctl diff`.
var diffFormats = []string{"table", "csv", "json"}

func diffCommand(connect connectFunc) *cobra.Command {
	var dsn, format string
	var publish bool
	var from, to int64
	cmd := &cobra.Command{
		Use:   "diff --inventory DSN [--from PASS] [--to PASS]",
		Short: "What changed in a tenant between two passes of an inventory: added, changed (which fields), deleted, moved or renamed, permissions",
		Long: `diff prints what changed in a tenant from pass --from to pass --to of an inventory (--to: the
latest pass by default; --from: the previous pass of --to's tenant and scope by default). A --from
further back, any earlier pass of the same tenant and scope, composes the change sets of the
passes in between per object: an object added then changed is added, added then deleted is not
listed, deleted then added again is changed (without fields: re-read it), changes and permission
changes list the union of their fields, moves keep the first previous URL (docs/inventory.md). It
refuses passes of different tenants or scopes, unknown passes, a --from not earlier than --to,
and --to or a pass in between that did not end complete.
With --publish it also publishes the change set on amr.changes.<tenant>.<pass> (stream AMR_CHANGES):
only a pass's own change set, against its base.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(diffFormats, format) {
				return fmt.Errorf("--format: %q is not one of %s", format, strings.Join(diffFormats, ", "))
			}
			if dsn == "" {
				return fmt.Errorf("--inventory: no DSN (sqlite:/path/inv.db or postgres://...; AMR_INVENTORY)")
			}
			store, err := openInventory(cmd.Context(), "inventory", dsn)
			if err != nil {
				return err
			}
			defer store.Close()
			cs, err := store.Changes(cmd.Context(), from, to)
			if err != nil {
				return diffArgError(err)
			}
			if publish {
				// amr.changes.<tenant>.<pass> carries a pass's own change set: a composed one would take its place.
				if tp, err := store.PassByID(cmd.Context(), cs.To); err != nil {
					return err
				} else if tp.Base != cs.From {
					return fmt.Errorf("--publish: only a pass's own change set (against pass %d, its base) is published on %s; --from %d composes several",
						tp.Base, topology.ChangesSubject(cs.Tenant, cs.To), cs.From)
				}
				nc, js, err := connect(cmd.Context())
				if err != nil {
					return err
				}
				defer nc.Close()
				n, err := changes.Publish(cmd.Context(), js, cs)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "published %d changes in %d parts on %s\n", len(cs.Changes), n, topology.ChangesSubject(cs.Tenant, cs.To))
			}
			out := cmd.OutOrStdout()
			if o, err := outputFormat(cmd); err != nil {
				return err
			} else if o == OutputJSON && format == "table" {
				format = "json" // -o json, the flag every command takes
			}
			switch format {
			case "csv":
				return cs.WriteCSV(out)
			case "json":
				return cs.WriteJSON(out)
			}
			return writeChangeTable(out, cs)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dsn, "inventory", envOr("AMR_INVENTORY", ""), "inventory DSN: sqlite:/path/inv.db or postgres://... (AMR_INVENTORY)")
	f.Int64Var(&from, "from", 0, "pass to compare from: the previous pass of --to's tenant and scope (default) or an earlier one of them")
	f.Int64Var(&to, "to", 0, "pass to compare (default: the latest pass)")
	f.StringVar(&format, "format", "table", "output: "+strings.Join(diffFormats, ", "))
	f.BoolVar(&publish, "publish", false, "also publish the change set on amr.changes.<tenant>.<pass> (--nats-url)")
	return cmd
}

// diffArgError names the flag an inventory error is about.
func diffArgError(err error) error {
	var ae *inventory.ArgError
	var up *inventory.UnknownPassError
	var tm *inventory.TenantMismatchError
	switch {
	case errors.As(err, &ae):
		return fmt.Errorf("--%s: %w", ae.Arg, err)
	case errors.As(err, &up) && up.Arg != "":
		return fmt.Errorf("--%s: %w", up.Arg, err)
	case errors.As(err, &tm):
		return fmt.Errorf("--from, --to: %w", err)
	}
	return err
}

// writeChangeTable prints the counts per kind, then one line per change.
func writeChangeTable(out io.Writer, cs *inventory.ChangeSet) error {
	fmt.Fprintf(out, "tenant %s: pass %d -> %d: %d changes (%d added, %d changed, %d deleted, %d moved, %d permissions)\n",
		cs.Tenant, cs.From, cs.To, len(cs.Changes), cs.Count(inventory.Added), cs.Count(inventory.Changed), cs.Count(inventory.Deleted),
		cs.Count(inventory.Moved), cs.Count(inventory.Permissions))
	if len(cs.Changes) == 0 {
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tTYPE\tID\tURL\tFIELDS / FROM")
	for _, c := range cs.Changes {
		note := strings.Join(c.Fields, ",")
		if c.PrevURL != "" {
			note += " from " + c.PrevURL
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.Kind, c.ObjectType, c.ObjectID, c.URL, note)
	}
	return w.Flush()
}

// openInventory opens an existing inventory named by a flag; errors name the flag. A SQLite DSN
// must name an existing file: opening creates a missing database, and a mistyped path would read
// an empty one.
func openInventory(ctx context.Context, flag, dsn string) (*inventory.Store, error) {
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
	}
	store, err := inventory.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return store, nil
}
