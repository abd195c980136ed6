package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

func amrctl(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := cli.Root()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--nats-url", url}, args...))
	err := root.Execute()
	return out.String(), err
}

// TestTopologyCommands: apply creates the topology with the operator's limits and downstream
// consumers, verify passes only then, and a second apply that would shrink a limit is refused
// unless --allow-lower.
func TestTopologyCommands(t *testing.T) {
	srv, err := testenv.StartNATS(testenv.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	url := srv.ClientURL()

	if _, err := amrctl(t, url, "topology", "verify"); !errors.Is(err, topology.ErrMissing) {
		t.Fatalf("verify before apply = %v, want ErrMissing", err)
	}
	out, err := amrctl(t, url, "topology", "apply", "--max-bytes", "AMR_RECORDS=8GiB", "--max-bytes", "amr_jobs=2GiB", "--downstream", "vendor-a,vendor-b")
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	for _, want := range []string{"topology applied (1 replicas)", "AMR_RECORDS", "8 GiB", "amr_jobs", "2 GiB", "amr_manifests"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if out, err := amrctl(t, url, "topology", "verify", "--downstream", "vendor-a,vendor-b"); err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("verify after apply: %v\n%s", err, out)
	}
	if _, err := amrctl(t, url, "topology", "verify", "--replicas", "3"); !errors.Is(err, topology.ErrMismatch) {
		t.Fatalf("verify --replicas 3 of R1 = %v", err)
	}
	_, err = amrctl(t, url, "topology", "apply")
	if !errors.Is(err, topology.ErrLower) || !strings.Contains(err.Error(), "AMR_RECORDS has a size limit of 8 GiB") {
		t.Fatalf("apply of the 6 GiB default over 8 GiB = %v, want a refusal naming it", err)
	}
	if out, err := amrctl(t, url, "topology", "apply", "--allow-lower"); err != nil || !strings.Contains(out, "6 GiB") {
		t.Fatalf("apply --allow-lower: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"--max-bytes", "AMR_RECORD=1GiB"},
		{"--max-bytes", "AMR_RECORDS"},
		{"--max-bytes", "AMR_RECORDS=lots"},
		{"--downstream", "a.b"},
	} {
		if _, err := amrctl(t, url, append([]string{"topology", "apply"}, bad...)...); err == nil {
			t.Errorf("apply %v succeeded", bad)
		}
	}
	if out, err := amrctl(t, url, "topology", "show"); err != nil || !strings.Contains(out, "amr_seen") || !strings.Contains(out, "object store") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	out, err = amrctl(t, url, "-o", "json", "topology", "show")
	var rows []struct {
		Name     string `json:"name"`
		MaxBytes int64  `json:"max_bytes"`
		Replicas int    `json:"replicas"`
	}
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil {
		t.Fatalf("show -o json: %v\n%s", err, out)
	}
	var records int64
	for _, r := range rows {
		if r.Name == "AMR_RECORDS" {
			records = r.MaxBytes
		}
	}
	if records != 6<<30 || rows[0].Replicas != 1 {
		t.Errorf("show -o json: AMR_RECORDS limit %d, want 6 GiB:\n%s", records, out)
	}
	out, err = amrctl(t, url, "-o", "json", "topology", "verify")
	var verified struct{ Verified bool }
	if err != nil || json.Unmarshal([]byte(out), &verified) != nil || !verified.Verified {
		t.Errorf("verify -o json: %v\n%s", err, out)
	}
}
