package cli_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/downstream/changes"
	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// TestDiffCommand builds an SQLite inventory of two passes of the small simulated tenant (the
// second incremental, after the simulator's changes) and a pass of another tenant, then runs
// `amrctl diff` in each format and with bad arguments: each format carries the same changes, and
// each bad argument is an error naming its flag.
func TestDiffCommand(t *testing.T) {
	ctx := context.Background()
	tn, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	targets := testenv.SmallTargets(func(s string) string { return s })
	opts := tenant.ReadOptions{IncludeVersions: true}
	recs1, err := testenv.ExportRecords(ctx, tn, "job-1", targets, opts)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := tn.Resolve(targets[0])
	if err != nil {
		t.Fatal(err)
	}
	opts.StartChangeToken = tn.CurrentChangeToken(tg)
	tn.Mutate(30)
	recs2, err := testenv.ExportRecords(ctx, tn, "job-2", targets, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.StartChangeToken = tn.CurrentChangeToken(tg)
	tn.Mutate(30)
	recs3, err := testenv.ExportRecords(ctx, tn, "job-3", targets, opts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "inv.db")
	dsn := "sqlite:" + path
	store, err := inventory.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		tenant string
		kind   inventory.Kind
		recs   int
	}{{"contoso.sharepoint.com", inventory.Full, 1}, {"contoso.sharepoint.com", inventory.Incremental, 2}, {"fabrikam.sharepoint.com", inventory.Full, 1},
		{"contoso.sharepoint.com", inventory.Incremental, 3}} {
		ps, err := store.BeginPass(ctx, inventory.PassInfo{Tenant: p.tenant, Scope: "/sites/small", Kind: p.kind})
		if err != nil {
			t.Fatal(err)
		}
		recs := [][]*amrpipev1.Record{recs1, recs2, recs3}[p.recs-1]
		if err := ps.Ingest(ctx, recs); err != nil {
			t.Fatal(err)
		}
		if err := ps.End(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	want, err := store.Changes(ctx, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	composed, err := store.Changes(ctx, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	if len(want.Changes) == 0 {
		t.Fatal("the simulator's changes made no change set")
	}

	out, err := amrctl(t, "", "diff", "--inventory", dsn, "--to", "2")
	if err != nil {
		t.Fatalf("diff: %v\n%s", err, out)
	}
	if lines := strings.Count(out, "\n"); lines != len(want.Changes)+2 || !strings.Contains(out, "pass 1 -> 2") {
		t.Errorf("table: %d lines for %d changes:\n%s", lines, len(want.Changes), out)
	}
	out, err = amrctl(t, "", "diff", "--inventory", dsn, "--from", "1", "--to", "2", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != len(want.Changes)+1 || strings.Join(rows[0], ",") != strings.Join(inventory.CSVHeader, ",") {
		t.Errorf("csv: %v, %d rows for %d changes", err, len(rows), len(want.Changes))
	}
	// Passes 1 and 4 are two incremental passes apart (3 is another tenant's): their change sets
	// composed.
	out, err = amrctl(t, "", "diff", "--inventory", dsn, "--from", "1", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got inventory.ChangeSet
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.From != 1 || got.To != 4 || len(got.Changes) != len(composed.Changes) {
		t.Errorf("composed json: %v, passes %d -> %d, %d changes, want 1 -> 4 and %d", err, got.From, got.To, len(got.Changes), len(composed.Changes))
	}
	// -o json, the flag every command takes, is --format json.
	if o, err := amrctl(t, "", "diff", "--inventory", dsn, "--from", "1", "-o", "json"); err != nil || o != out {
		t.Errorf("diff -o json: %v, differs from --format json:\n%s", err, o)
	}
	env := testenv.StartJetStream(t)
	out, err = amrctl(t, env.Server.ClientURL(), "diff", "--inventory", dsn, "--to", "2", "--format", "json", "--publish")
	if err != nil {
		t.Fatal(err)
	}
	got = inventory.ChangeSet{}
	out = out[strings.Index(out, "{"):] // after the line saying where it published
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Changes) != len(want.Changes) || got.Tenant != "contoso.sharepoint.com" {
		t.Errorf("json: %v, %d changes for %d", err, len(got.Changes), len(want.Changes))
	}
	parts := testenv.Messages(t, ctx, env.JS, topology.StreamChanges, topology.ChangesSubject("contoso.sharepoint.com", 2),
		func() *amrpipev1.ChangeSetPart { return &amrpipev1.ChangeSetPart{} })
	if published, err := changes.FromParts(parts); err != nil || len(published.Changes) != len(want.Changes) {
		t.Errorf("published change set: %v, %d parts", err, len(parts))
	}

	for _, c := range []struct {
		args []string
		flag string
		is   any
	}{
		{[]string{"--inventory", "mysql://u:pw@db/inv"}, "--inventory", new(*inventory.DSNError)},
		{[]string{"--inventory", "sqlite:" + path + ".missing"}, "--inventory", nil},
		{[]string{"--inventory", dsn, "--to", "9"}, "--to", new(*inventory.UnknownPassError)},
		{[]string{"--inventory", dsn, "--from", "8", "--to", "2"}, "--from", new(*inventory.UnknownPassError)},
		{[]string{"--inventory", dsn, "--from", "3", "--to", "2"}, "--from, --to", new(*inventory.TenantMismatchError)},
		{[]string{"--inventory", dsn, "--to", "1"}, "--to", new(*inventory.ArgError)},
		{[]string{"--inventory", dsn, "--from", "2", "--to", "1"}, "--from", new(*inventory.ArgError)},
		{[]string{"--inventory", dsn, "--from", "3"}, "--from, --to", new(*inventory.TenantMismatchError)},
		{[]string{"--inventory", dsn, "--from", "1", "--publish"}, "--publish", nil},
		{[]string{"--inventory", dsn, "--format", "xml"}, "--format", nil},
	} {
		out, err := amrctl(t, "", append([]string{"diff"}, c.args...)...)
		if err == nil || !strings.HasPrefix(err.Error(), c.flag+":") {
			t.Errorf("diff %v = %v (%s), want an error naming %s", c.args, err, out, c.flag)
			continue
		}
		if c.is != nil && !errors.As(err, c.is) {
			t.Errorf("diff %v = %v, want a %T", c.args, err, c.is)
		}
		if strings.Contains(err.Error(), "pw@") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
