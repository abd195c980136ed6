package sizing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// TestGoldenPlan pins whole job specs, ids included: the services de-duplicate on job ids, so
// ids that change between releases would resubmit the jobs of a plan redelivered across an
// upgrade. Regenerate with -update only for a deliberate change.
func TestGoldenPlan(t *testing.T) {
	tn := loadTenant(t, "testdata/tenant.txt")
	p := newPlanner(t, testConfig())
	req := sizing.Request{
		PlanID: "golden", SiteURL: site,
		Targets:      abs("Docs", "Policies", "Forms", "eng/Specs", "eng/Designs"),
		Options:      spo.ReadOptions{IncludeSecurity: true, IncludePermission: true, IncludeVersions: true},
		Incremental:  true,
		ChangeTokens: map[string]sizing.StoredToken{tn.node(t, site+"/Policies").listID: {Token: "1;3;policies;1;9", IssuedAt: now.Add(-time.Hour)}},
	}
	e, err := run(context.Background(), tn, p, req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(e.jobs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const path = "testdata/plan.golden.json"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("jobs differ from %s (run with -update after a deliberate change):\n%s", path, got)
	}
}

func TestJobSpecJSONRoundTrip(t *testing.T) {
	want, err := os.ReadFile("testdata/plan.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var jobs []sizing.JobSpec
	if err := json.Unmarshal(want, &jobs); err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(jobs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, '\n'), want) {
		t.Errorf("JSON round trip changed the specs:\n%s", got)
	}
	var e sizing.Emit
	if err := json.Unmarshal([]byte(`"everything"`), &e); err == nil {
		t.Errorf("unknown emit policy accepted as %s", e)
	}
}
