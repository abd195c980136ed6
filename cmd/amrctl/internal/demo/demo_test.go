package demo_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/demo"
	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// TestDemoOnTheSmallTenant runs the whole demo on the small profile: a full pass of the source and
// an export of a destination with seeded differences into one SQLite inventory through the
// pipeline and the inventory sink, the validation, 120 simulator changes and an incremental pass.
// The inventory holds exactly the tenant's content objects (the ground truth), the incremental
// change set is exactly the simulator's changes, the validation's failures are exactly the seeded
// differences, and the reports are where the demo says.
func TestDemoOnTheSmallTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts JetStream, Azurite, two simulators and the five stages")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st, err := devstack.Start(ctx, devstack.Options{Profile: tenant.SmallProfile(), Small: testenv.SmallProfileSmall, Large: testenv.SmallProfileLarge,
		MaxManifestBytes: 64 << 10, PollInterval: 100 * time.Millisecond,
		Destination: &tenant.DestinationSpec{Sites: map[string]string{testenv.Site: testenv.Site + "-new"}, Seed: 3, PerKind: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Errorf("close stack: %v", err)
		}
	}()
	out := t.TempDir()
	var log bytes.Buffer
	res, err := demo.Run(ctx, st, demo.Options{Out: out, Plans: []*amrpipev1.PlanRequest{testenv.SmallPlan(st.SiteURL, "small", false)},
		Validate: true, Changes: 120, JSONL: true}, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, &log)
	}
	t.Log(log.String())
	if res.ChangesMismatch != "" || res.SimulatorChanges < 50 {
		t.Errorf("change set vs %d simulator changes:\n%s", res.SimulatorChanges, res.ChangesMismatch)
	}
	if res.FindingsMismatch != "" || res.Seeded != 2*len(tenant.DifferenceKinds) {
		t.Errorf("findings vs %d seeded differences:\n%s", res.Seeded, res.FindingsMismatch)
	}
	if !res.OK() || res.JobsFailed > 0 {
		t.Errorf("result not OK: %+v", res)
	}
	if !strings.Contains(log.String(), "the change set equals the simulator's") || !strings.Contains(log.String(), "the failures are exactly the destination's 16 seeded differences") {
		t.Errorf("output:\n%s", &log)
	}

	// The inventory holds the source tenant as it is now: exactly the ground truth.
	store, err := inventory.Open(ctx, "sqlite:"+res.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	truth, err := st.Truth(ctx, testenv.SmallTargets(st.SiteURL), tenant.ReadOptions{IncludeVersions: true, IncludePermission: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[testenv.Object]int{}
	host := strings.TrimPrefix(st.SimURL, "http://")
	if err := store.Objects(ctx, host, inventory.Filter{}, func(o *inventory.Object) error {
		got[testenv.Object{Type: o.Type, ID: o.ID}]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.Diff(got, truth); err != nil {
		t.Errorf("inventory vs the tenant: %v", err)
	}
	// Three passes of the source (full, incremental) and the destination, all complete.
	passes, err := store.Passes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(passes) != 3 {
		t.Errorf("%d passes, want 3", len(passes))
	}
	for _, p := range passes {
		if !p.Complete {
			t.Errorf("pass %d (%s %s) incomplete", p.ID, p.Tenant, p.Kind)
		}
	}
	for _, p := range append(append([]string{res.ChangesCSV, res.RecordsJSONL}, res.ValidationReports...), res.RunReports...) {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v (empty?)", p, err)
		}
	}
	if len(res.ValidationReports) != 5 || filepath.Base(res.ValidationReports[len(res.ValidationReports)-1]) != "report.html" {
		t.Errorf("validation reports %v", res.ValidationReports)
	}
}
