package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/validate"
)

// ErrDifferences is the error of `validate` when the validation found differences; amrctl exits
// with ExitDifferences for it.
var ErrDifferences = errors.New("the destination differs from the source")

func validateCommand() *cobra.Command {
	var (
		srcCSV, dstCSV, srcRecords, dstRecords, loginMap, out string
		srcInv, dstInv, srcTenant, dstTenant                  string
		maps                                                  []string
		tolerance                                             time.Duration
		htmlItems                                             int
	)
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Post-migration validation: compare a destination with its source and write SPMT-style reports",
		Long: `Compares the items of a source tenant with a destination's through path mappings (--map SRC=DST,
repeatable) and checks presence, size, modified time (--mtime-tolerance), version count, author and
editor (through --login-map, SPMT's user mapping format) and unique permissions. Each side is a
migration engine's CSV report (--source-csv, --destination-csv; columns in docs/validation.md) or
the pipeline's records as JSON lines (--source-records, --destination-records; amrctl dev --jsonl
writes them) or a tenant of an inventory (--source-inventory DSN --source-tenant HOST,
--destination-inventory DSN --destination-tenant HOST; its latest state, from a complete latest
pass; amrctl dev writes out/inventory.db). Writes SummaryReport.csv, ItemReport.csv, ItemFailureReport.csv, FailureSummary.csv
and report.html (self-contained: open it in any browser, offline) into --out.

Exit status: 0 when every check passed, 2 when differences were found (the reports say which),
1 when the validation could not run (bad input: then no report is written).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, closeSrc, err := sideSource(cmd.Context(), "source", side{csv: srcCSV, records: srcRecords, inventory: srcInv, tenant: srcTenant})
			if err != nil {
				return err
			}
			defer closeSrc()
			dst, closeDst, err := sideSource(cmd.Context(), "destination", side{csv: dstCSV, records: dstRecords, inventory: dstInv, tenant: dstTenant})
			if err != nil {
				return err
			}
			defer closeDst()
			opts := validate.Options{MtimeTolerance: tolerance}
			for _, m := range maps {
				mp, err := validate.ParseMapping(m)
				if err != nil {
					return fmt.Errorf("--map: %w", err)
				}
				opts.Mappings = append(opts.Mappings, mp)
			}
			if len(opts.Mappings) == 0 {
				return errors.New("--map SRC=DST is required")
			}
			// An inventory reads only what the mappings cover.
			var froms, tos []string
			for _, m := range opts.Mappings {
				froms, tos = append(froms, m.From), append(tos, m.To)
			}
			if inv, ok := src.(*validate.InventorySource); ok {
				src = inv.Under(froms...)
			}
			if inv, ok := dst.(*validate.InventorySource); ok {
				dst = inv.Under(tos...)
			}
			if loginMap != "" {
				f, err := os.Open(loginMap)
				if err != nil {
					return fmt.Errorf("--login-map: %w", err)
				}
				opts.Logins, err = validate.ReadLoginMap(loginMap, f)
				f.Close()
				if err != nil {
					return fmt.Errorf("--login-map: %w", err)
				}
			}
			res, err := validate.Validate(cmd.Context(), src, dst, opts)
			if errors.Is(err, validate.ErrMapsNothing) {
				return fmt.Errorf("--map: %w", err)
			}
			if err != nil {
				return err
			}
			paths, err := validate.WriteReports(out, res, htmlItems, time.Now())
			if err != nil {
				return err
			}
			summary := map[string]any{"items": res.Total.Items, "lists": len(res.Lists), "passed": res.Total.Passed,
				"failed": res.Total.Failed, "failed_by_check": res.Total.ByCheck, "reports": paths}
			err = render(cmd, summary, func(w io.Writer) error {
				fmt.Fprintf(w, "%d items compared in %d lists: %d passed, %d failed\n", res.Total.Items, len(res.Lists), res.Total.Passed, res.Total.Failed)
				for _, c := range validate.Checks {
					if n := res.Total.ByCheck[c]; n > 0 {
						fmt.Fprintf(w, "  %-12s %d\n", c, n)
					}
				}
				fmt.Fprintln(w, "reports:")
				for _, p := range paths {
					fmt.Fprintln(w, "  "+p)
				}
				_, err := fmt.Fprintf(w, "open %s in a browser (it needs no network)\n", paths[len(paths)-1])
				return err
			})
			if err != nil {
				return err
			}
			if res.Failed() {
				return fmt.Errorf("%d items failed: %w", res.Total.Failed, ErrDifferences)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&srcCSV, "source-csv", "", "the source's items: a migration engine's CSV report")
	f.StringVar(&dstCSV, "destination-csv", "", "the destination's items: a CSV report")
	f.StringVar(&srcRecords, "source-records", "", "the source's items: the pipeline's records as JSON lines")
	f.StringVar(&dstRecords, "destination-records", "", "the destination's items: records as JSON lines")
	f.StringVar(&srcInv, "source-inventory", "", "the source's items: an inventory DSN (sqlite:/path/inv.db or postgres://...), with --source-tenant")
	f.StringVar(&srcTenant, "source-tenant", "", "the source tenant in --source-inventory (its host, as amrctl diff shows it)")
	f.StringVar(&dstInv, "destination-inventory", "", "the destination's items: an inventory DSN, with --destination-tenant")
	f.StringVar(&dstTenant, "destination-tenant", "", "the destination tenant in --destination-inventory")
	f.StringArrayVar(&maps, "map", nil, "path mapping SRC=DST of server-relative prefixes, e.g. /sites/hr=/sites/hr-new (repeatable)")
	f.StringVar(&loginMap, "login-map", "", "CSV without header: source login, destination login[, TRUE for a group] (SPMT's user mapping format)")
	f.DurationVar(&tolerance, "mtime-tolerance", 2*time.Second, "largest modified-time difference that passes")
	f.StringVar(&out, "out", "validation", "directory the reports are written to")
	f.IntVar(&htmlItems, "html-items", validate.DefaultHTMLItems, "item failures listed in report.html (the CSVs list all)")
	return cmd
}

// side is one side's input flags.
type side struct{ csv, records, inventory, tenant string }

// sideSource opens one side's input: exactly one of a CSV report, a records file or an inventory
// tenant. The returned func closes what it opened.
func sideSource(ctx context.Context, name string, in side) (validate.Source, func(), error) {
	nop := func() {}
	var given []string
	for _, f := range []struct{ flag, v string }{{"csv", in.csv}, {"records", in.records}, {"inventory", in.inventory}} {
		if f.v != "" {
			given = append(given, "--"+name+"-"+f.flag)
		}
	}
	switch {
	case len(given) > 1:
		return nil, nop, fmt.Errorf("%s: give one", strings.Join(given, " and "))
	case in.tenant != "" && in.inventory == "":
		return nil, nop, fmt.Errorf("--%s-tenant: names a tenant of --%s-inventory, which is not given", name, name)
	case in.csv != "":
		if _, err := os.Stat(in.csv); err != nil {
			return nil, nop, fmt.Errorf("--%s-csv: %w", name, err)
		}
		return validate.NewCSVSource(in.csv, func() (io.ReadCloser, error) { return os.Open(in.csv) }), nop, nil
	case in.records != "":
		f, err := os.Open(in.records)
		if err != nil {
			return nil, nop, fmt.Errorf("--%s-records: %w", name, err)
		}
		defer f.Close()
		recs, err := validate.ReadRecordsJSONL(in.records, f)
		if err != nil {
			return nil, nop, fmt.Errorf("--%s-records: %w", name, err)
		}
		return validate.NewRecordsSource(in.records, recs), nop, nil
	case in.inventory != "":
		if strings.TrimSpace(in.tenant) == "" {
			return nil, nop, fmt.Errorf("--%s-tenant: required with --%s-inventory (the tenant's host, e.g. contoso.sharepoint.com)", name, name)
		}
		store, err := openInventory(ctx, name+"-inventory", in.inventory)
		if err != nil {
			return nil, nop, err
		}
		return validate.NewInventorySource(store, in.tenant), func() {
			if err := store.Close(); err != nil {
				slog.Warn("closing the inventory", "flag", "--"+name+"-inventory", "err", err)
			}
		}, nil
	}
	return nil, nop, fmt.Errorf("the %s: give --%s-csv, --%s-records or --%s-inventory", name, name, name, name)
}
