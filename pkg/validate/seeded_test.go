package validate_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	"github.com/amrpipe/amrpipe/pkg/validate"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// exported is what a full export of the small profile's lists of site yields: one job per web, as
// the pipeline's planner splits them (AMR jobs are per web).
func exported(t *testing.T, tn *tenant.Tenant, site, name string) *validate.RecordsSource {
	t.Helper()
	opts := tenant.ReadOptions{IncludeVersions: true, IncludePermission: true, IncludeSecurity: true}
	var recs []*amrpipev1.Record
	for i, targets := range [][]string{{site + "/Shared Documents", site + "/Lists/Tasks"}, {site + "/team/Notes"}} {
		r, err := testenv.ExportRecords(context.Background(), tn, fmt.Sprintf("%s-job-%d", name, i), targets, opts)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r...)
	}
	return validate.NewRecordsSource(name, recs)
}

// finding is one failed check as a test states it: the check and the item's URL (the destination's
// for an extra item, the source's otherwise).
type finding struct {
	check validate.Check
	url   string
}

// expected turns the simulator's seeded differences into the findings a validation must report.
func expected(diffs []tenant.Difference) map[finding]tenant.Difference {
	want := map[finding]tenant.Difference{}
	for _, d := range diffs {
		switch d.Kind {
		case tenant.DiffMissing:
			want[finding{validate.CheckMissing, d.SourceURL}] = d
		case tenant.DiffRenamed:
			want[finding{validate.CheckMissing, d.SourceURL}] = d
			want[finding{validate.CheckExtra, d.DestinationURL}] = d
		case tenant.DiffSize:
			want[finding{validate.CheckSize, d.SourceURL}] = d
		case tenant.DiffVersions:
			want[finding{validate.CheckVersions, d.SourceURL}] = d
		case tenant.DiffModified:
			want[finding{validate.CheckModified, d.SourceURL}] = d
		case tenant.DiffEditor:
			want[finding{validate.CheckEditor, d.SourceURL}] = d
		case tenant.DiffPermissions, tenant.DiffPrincipal:
			want[finding{validate.CheckPermissions, d.SourceURL}] = d
		}
	}
	return want
}

func findings(res *validate.Result) map[finding]validate.Failure {
	got := map[finding]validate.Failure{}
	for _, it := range res.Items {
		for _, f := range it.Failures {
			u := it.SourceURL
			if f.Check == validate.CheckExtra {
				u = it.DestinationURL
			}
			got[finding{f.Check, u}] = f
		}
	}
	return got
}

// TestSeededDestinationYieldsExactlyTheSeededDifferences is the validation's ground-truth test: a
// source tenant and the destination the simulator derives from it with seeded differences, both
// exported and parsed the way the pipeline does, validated through the site mapping and the
// destination's login mapping: the failures are exactly the seeded differences (a renamed file is
// missing at its old URL and extra at its new one), with the seeded values, and nothing else.
func TestSeededDestinationYieldsExactlyTheSeededDifferences(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			src, err := tenant.New(tenant.SmallProfile())
			if err != nil {
				t.Fatal(err)
			}
			dst, err := tenant.NewDestination(tenant.SmallProfile(), tenant.DestinationSpec{
				Sites: map[string]string{"/sites/small": "/sites/small-new"}, Seed: seed, PerKind: 3})
			if err != nil {
				t.Fatal(err)
			}
			res, err := validate.Validate(context.Background(), exported(t, src, "/sites/small", "source"),
				exported(t, dst, "/sites/small-new", "destination"), validate.Options{
					Mappings:       []validate.Mapping{{From: "/sites/small", To: "/sites/small-new"}},
					Logins:         dst.LoginMap(),
					MtimeTolerance: 2 * time.Second,
				})
			if err != nil {
				t.Fatal(err)
			}
			checkCompared(t, res)
			checkSeeded(t, res, dst.Seeded())
			if n := len(expected(dst.Seeded())); n != 9*3 {
				t.Errorf("%d findings expected from %d differences", n, len(dst.Seeded()))
			}
			// A renamed file is one missing and one extra item: 8 kinds x 3 items, and 3 extras.
			if res.Total.Failed != 8*3+3 {
				t.Errorf("%d failed items, want %d", res.Total.Failed, 8*3+3)
			}
		})
	}
}

// checkSeeded checks that the validation found exactly the seeded differences, each with the
// seeded values.
func checkSeeded(t *testing.T, res *validate.Result, seeded []tenant.Difference) {
	t.Helper()
	want, got := expected(seeded), findings(res)
	for f, d := range want {
		g, ok := got[f]
		if !ok {
			t.Errorf("seeded %s %s not found", d.Kind, f.url)
			continue
		}
		if d.Source != "" && f.check != validate.CheckPermissions && (g.Source != d.Source || g.Destination != d.Destination) {
			t.Errorf("%s %s: found %q → %q, seeded %q → %q", f.check, f.url, g.Source, g.Destination, d.Source, d.Destination)
		}
	}
	for f, g := range got {
		if _, ok := want[f]; !ok {
			t.Errorf("unseeded difference found: %s %s (%q → %q)", f.check, f.url, g.Source, g.Destination)
		}
	}
}

// checkCompared makes sure the comparison had something to compare: every item of the small
// profile's three lists, their authors resolved to logins, versions counted and unique
// permissions with principals.
func checkCompared(t *testing.T, res *validate.Result) {
	t.Helper()
	if res.Total.Items < 2000 || len(res.Lists) != 3 {
		t.Fatalf("%d items in %d lists compared: %+v", res.Total.Items, len(res.Lists), res.Lists)
	}
}

// TestReportsOfTheSeededDestination writes the reports of a seeded validation: the CSVs carry
// every item and the seeded failures, and report.html is well-formed, self-contained and shows the
// counts (item failures capped, with a pointer to the CSV).
func TestReportsOfTheSeededDestination(t *testing.T) {
	src, _ := tenant.New(tenant.SmallProfile())
	dst, err := tenant.NewDestination(tenant.SmallProfile(), tenant.DestinationSpec{Sites: map[string]string{"/sites/small": "/sites/small-new"}, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	res, err := validate.Validate(context.Background(), exported(t, src, "/sites/small", "source"),
		exported(t, dst, "/sites/small-new", "destination"), validate.Options{
			Mappings: []validate.Mapping{{From: "/sites/small", To: "/sites/small-new"}}, Logins: dst.LoginMap(), MtimeTolerance: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	paths, err := validate.WriteReports(dir, res, 5, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 5 {
		t.Fatalf("paths %v", paths)
	}
	read := func(name string) [][]string {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	failed := 8*2 + 2 // two per kind, and the renamed files' extras
	if rows := read(validate.ItemFile); len(rows) != 1+res.Total.Items || !slices.Equal(rows[0], validate.ItemColumns) {
		t.Errorf("item report: %d rows, want %d", len(rows), 1+res.Total.Items)
	}
	if rows := read(validate.ItemFailureFile); len(rows) != 1+failed {
		t.Errorf("item failure report: %d rows, want %d", len(rows), 1+failed)
	}
	sum := read(validate.SummaryFile)
	if last := sum[len(sum)-1]; len(sum) != 1+3+1 || last[0] != "(all)" || last[2] != validate.StatusFailed || last[5] != strconv.Itoa(failed) {
		t.Errorf("summary %q", sum)
	}
	n := 0
	for _, row := range read(validate.FailureSummaryFile)[1:] {
		c, _ := strconv.Atoi(row[3])
		n += c
	}
	if n != 8*2+2 { // every failure once: a renamed file is one missing and one extra
		t.Errorf("failure summary sums to %d", n)
	}
	page, err := os.ReadFile(filepath.Join(dir, validate.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict = true
	var texts []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("report.html is not well-formed: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			for _, a := range tk.Attr {
				if (a.Name.Local == "src" || a.Name.Local == "href") && !strings.HasPrefix(a.Value, "#") {
					t.Errorf("<%s %s=%q> leaves the page", tk.Name.Local, a.Name.Local, a.Value)
				}
			}
			if tk.Name.Local == "script" {
				t.Error("a script")
			}
		case xml.CharData:
			texts = append(texts, strings.TrimSpace(string(tk)))
		}
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"\n" + strconv.Itoa(res.Total.Items) + "\nitems compared", "\n" + strconv.Itoa(failed) + "\nfailed",
		"Showing the first 5 of " + strconv.Itoa(failed) + " failed items; ItemFailureReport.csv lists them all."} {
		if !strings.Contains(all, want) {
			t.Errorf("report.html does not show %q", want)
		}
	}
}

// inventoried ingests what exported yields for a tenant into one complete full pass of an SQLite
// inventory, under the tenant's name, and returns the inventory's source of that tenant.
func inventoried(t *testing.T, store *inventory.Store, tn *tenant.Tenant, site, name string) *validate.InventorySource {
	t.Helper()
	if err := testenv.InventoryPass(context.Background(), store, tn, name, site,
		[]string{site + "/Shared Documents", site + "/Lists/Tasks"}, []string{site + "/team/Notes"}); err != nil {
		t.Fatal(err)
	}
	return validate.NewInventorySource(store, name)
}

// TestSeededDestinationThroughInventories is the seeded test with both sides read from an
// inventory (one SQLite database holding both tenants, as `amrctl dev` writes it): the failures are
// exactly the seeded differences with their values, and the items compared are the records
// source's, item for item.
func TestSeededDestinationThroughInventories(t *testing.T) {
	ctx := context.Background()
	src, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	dst, err := tenant.NewDestination(tenant.SmallProfile(), tenant.DestinationSpec{
		Sites: map[string]string{"/sites/small": "/sites/small-new"}, Seed: 2, PerKind: 3})
	if err != nil {
		t.Fatal(err)
	}
	store, err := inventory.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	opts := validate.Options{Mappings: []validate.Mapping{{From: "/sites/small", To: "/sites/small-new"}},
		Logins: dst.LoginMap(), MtimeTolerance: 2 * time.Second}
	srcInv, dstInv := inventoried(t, store, src, "/sites/small", "source.example"), inventoried(t, store, dst, "/sites/small-new", "destination.example")
	res, err := validate.Validate(ctx, srcInv.Under("/sites/small"), dstInv.Under("/SITES/small-new/"), opts)
	if err != nil {
		t.Fatal(err)
	}
	checkCompared(t, res)
	checkSeeded(t, res, dst.Seeded())
	// Under keeps what is below a path, at a segment boundary.
	n := 0
	if err := srcInv.Under("/sites/small/team").Items(ctx, func(it *validate.Item) error {
		n++
		if !strings.HasPrefix(it.URL, "/sites/small/team/") {
			t.Errorf("%s is not under /sites/small/team", it.URL)
		}
		return nil
	}); err != nil || n == 0 || n >= res.Total.Items {
		t.Errorf("under /sites/small/team: %d items of %d (%v)", n, res.Total.Items, err)
	}
	// The records of the same exports compare the same items with the same outcome.
	fromRecords, err := validate.Validate(ctx, exported(t, src, "/sites/small", "source"), exported(t, dst, "/sites/small-new", "destination"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total.Items != fromRecords.Total.Items || res.Total.Failed != fromRecords.Total.Failed || len(res.Lists) != len(fromRecords.Lists) {
		t.Errorf("inventories: %d items in %d lists, %d failed; records: %d items in %d lists, %d failed",
			res.Total.Items, len(res.Lists), res.Total.Failed, fromRecords.Total.Items, len(fromRecords.Lists), fromRecords.Total.Failed)
	}
}

// TestInventorySourceRefusesATenantWithoutACompletePass: no pass, an open pass and an incomplete
// latest pass are errors (ErrInventoryPass), never an empty or partial tenant.
func TestInventorySourceRefusesATenantWithoutACompletePass(t *testing.T) {
	ctx := context.Background()
	store, err := inventory.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	items := func(tenantName string) error {
		return validate.NewInventorySource(store, tenantName).Items(ctx, func(*validate.Item) error { return nil })
	}
	if err := items("nobody.example"); !errors.Is(err, validate.ErrInventoryPass) {
		t.Errorf("no pass: %v", err)
	}
	pass, err := store.BeginPass(ctx, inventory.PassInfo{Tenant: "t.example", Scope: "/sites/a", Kind: inventory.Full})
	if err != nil {
		t.Fatal(err)
	}
	if err := items("t.example"); !errors.Is(err, validate.ErrInventoryPass) || !strings.Contains(err.Error(), "still open") {
		t.Errorf("open pass: %v", err)
	}
	if err := pass.End(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := items("t.example"); !errors.Is(err, validate.ErrInventoryPass) || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("incomplete pass: %v", err)
	}
}
