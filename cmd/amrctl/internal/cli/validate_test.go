package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	"github.com/amrpipe/amrpipe/pkg/validate"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// writeRecords exports the small profile's lists of site from tn as JSON lines, the sink's format.
func writeRecords(t *testing.T, tn *tenant.Tenant, site, path string) {
	t.Helper()
	recs, err := testenv.ExportRecords(context.Background(), tn, "job-"+filepath.Base(path),
		[]string{site + "/Shared Documents", site + "/Lists/Tasks"}, tenant.ReadOptions{IncludeVersions: true, IncludePermission: true, IncludeSecurity: true})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, r := range recs {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runAmrctl(args ...string) (string, error) {
	cmd := Root()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestValidateCommand runs `amrctl validate` over records files of a source and its seeded
// destination with the destination's login mapping: it writes the five reports, prints where they
// are, and ends with ErrDifferences (exit status 4). Bad input ends with an error (exit status 1)
// and no report.
func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	src, dst := smallAndDestination(t)
	srcFile, dstFile, logins := filepath.Join(dir, "src.jsonl"), filepath.Join(dir, "dst.jsonl"), filepath.Join(dir, "users.csv")
	writeRecords(t, src, "/sites/small", srcFile)
	writeRecords(t, dst, "/sites/small-new", dstFile)
	var lm strings.Builder
	for s, d := range dst.LoginMap() {
		fmt.Fprintf(&lm, "%s,%s,FALSE\n", s, d)
	}
	if err := os.WriteFile(logins, []byte(lm.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "reports")
	stdout, err := runAmrctl("validate", "--source-records", srcFile, "--destination-records", dstFile,
		"--map", "/sites/small=/sites/small-new", "--login-map", logins, "--out", out)
	if !errors.Is(err, ErrDifferences) || ExitCode(err) != ExitDifferences {
		t.Fatalf("err %v (exit %d), want differences (exit 2)\n%s", err, ExitCode(err), stdout)
	}
	for _, name := range []string{validate.SummaryFile, validate.ItemFile, validate.ItemFailureFile, validate.FailureSummaryFile, validate.HTMLFile} {
		p := filepath.Join(out, name)
		if _, err := os.Stat(p); err != nil || !strings.Contains(stdout, p) {
			t.Errorf("%s: %v, or not printed:\n%s", name, err, stdout)
		}
	}
	// The Notes library of the team web was not exported: only the seeded differences of the two
	// lists of the root web can be found.
	if !strings.Contains(stdout, "failed") || !strings.Contains(stdout, "missing") {
		t.Errorf("output:\n%s", stdout)
	}
	stdout, err = runAmrctl("validate", "-o", "json", "--source-records", srcFile, "--destination-records", dstFile,
		"--map", "/sites/small=/sites/small-new", "--login-map", logins, "--out", filepath.Join(dir, "reports-json"))
	var summary struct {
		Items, Failed int
		ByCheck       map[string]int `json:"failed_by_check"`
		Reports       []string
	}
	if ExitCode(err) != ExitDifferences || json.Unmarshal([]byte(stdout), &summary) != nil || summary.Failed == 0 ||
		summary.Items == 0 || summary.ByCheck["missing"] == 0 || len(summary.Reports) != 5 {
		t.Errorf("validate -o json: %v, %+v\n%s", err, summary, stdout)
	}

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"mapping maps nothing": {[]string{"--map", "/sites/small=/sites/small-new", "--map", "/sites/hr=/sites/hr-new"}, "mapping /sites/hr=/sites/hr-new maps nothing"},
		"no mapping":           {nil, "--map SRC=DST is required"},
		"bad mapping":          {[]string{"--map", "small=x"}, "--map: mapping \"small=x\""},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "reports")
			args := append([]string{"validate", "--source-records", srcFile, "--destination-records", dstFile, "--out", out}, tc.args...)
			_, err := runAmrctl(args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || ExitCode(err) != ExitFailed {
				t.Fatalf("err %v, want one saying %q (exit 1)", err, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("reports written for a failed validation: %v", err)
			}
		})
	}
	if _, err := runAmrctl("validate", "--source-csv", "/nonexistent.csv", "--destination-records", dstFile, "--map", "/a=/b"); err == nil || !strings.Contains(err.Error(), "--source-csv") {
		t.Errorf("missing CSV: %v", err)
	}
}

// TestValidateCommandOverAnInventory: --source-inventory and --destination-inventory with their
// tenants read one inventory holding both tenants and end with the seeded differences (exit 2);
// each flag mistake is an error naming the flag (exit 1), no report written.
func TestValidateCommandOverAnInventory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, dst := smallAndDestination(t)
	dbPath := filepath.Join(dir, "inventory.db")
	dsn := "sqlite:" + dbPath
	store, err := inventory.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		tn           *tenant.Tenant
		site, tenant string
	}{{src, "/sites/small", "src.example"}, {dst, "/sites/small-new", "dst.example"}} {
		if err := testenv.InventoryPass(ctx, store, side.tn, side.tenant, side.site,
			[]string{side.site + "/Shared Documents", side.site + "/Lists/Tasks"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "reports")
	stdout, err := runAmrctl("validate", "--source-inventory", dsn, "--source-tenant", "src.example",
		"--destination-inventory", dsn, "--destination-tenant", "dst.example", "--map", "/sites/small=/sites/small-new", "--out", out)
	if !errors.Is(err, ErrDifferences) || !strings.Contains(stdout, "missing") {
		t.Fatalf("err %v, want differences\n%s", err, stdout)
	}
	if _, err := os.Stat(filepath.Join(out, validate.HTMLFile)); err != nil {
		t.Error(err)
	}
	recordsFile := filepath.Join(dir, "src.jsonl")
	writeRecords(t, src, "/sites/small", recordsFile)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"two inputs of a side": {[]string{"--source-inventory", dsn, "--source-tenant", "src.example", "--source-records", recordsFile,
			"--destination-inventory", dsn, "--destination-tenant", "dst.example"}, "--source-records and --source-inventory: give one"},
		"no tenant": {[]string{"--source-inventory", dsn, "--destination-inventory", dsn, "--destination-tenant", "dst.example"},
			"--source-tenant: required with --source-inventory"},
		"tenant without inventory": {[]string{"--source-records", recordsFile, "--destination-inventory", dsn, "--destination-tenant", "dst.example",
			"--source-tenant", "src.example"}, "--source-tenant: names a tenant of --source-inventory"},
		"missing database": {[]string{"--source-inventory", "sqlite:" + filepath.Join(dir, "nope.db"), "--source-tenant", "src.example",
			"--destination-inventory", dsn, "--destination-tenant", "dst.example"}, "--source-inventory:"},
		"unknown tenant": {[]string{"--source-inventory", dsn, "--source-tenant", "nobody.example",
			"--destination-inventory", dsn, "--destination-tenant", "dst.example"}, "inventory of nobody.example: the inventory has no pass of this tenant"},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "reports")
			_, err := runAmrctl(append([]string{"validate", "--map", "/sites/small=/sites/small-new", "--out", out}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || ExitCode(err) != ExitFailed {
				t.Fatalf("err %v, want one saying %q (exit 1)", err, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("reports written for a failed validation: %v", err)
			}
		})
	}
}

// smallAndDestination are the small profile's tenant and its destination /sites/small-new with
// seeded differences (seed 9).
func smallAndDestination(t *testing.T) (src, dst *tenant.Tenant) {
	t.Helper()
	src, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	dst, err = tenant.NewDestination(tenant.SmallProfile(), tenant.DestinationSpec{Sites: map[string]string{"/sites/small": "/sites/small-new"}, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	return src, dst
}
