package architecture_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/amrpipe/amrpipe/"

// rule says which of the module's packages the packages under a path may import (non-test
// code); a package follows the rule with the longest matching path.
type rule struct {
	path  string
	allow []string
	why   string
}

func rules() []rule {
	core := []string{"proto/", "pkg/crypto/"}
	return []rule{
		{"proto/", nil, "the contracts import nothing of ours"},
		{"pkg/crypto/", []string{"proto/"}, "crypto is a leaf"},
		{"pkg/pipeline/backoff", nil, "the back-off is a leaf every group may use"},
		{"pkg/pipeline/", append(core, "pkg/pipeline/"), "the pipeline core knows nothing of SharePoint or the stages"},
		{"pkg/sharepoint/", append(core, "pkg/sharepoint/", "pkg/pipeline/backoff"), "SharePoint's surface knows nothing of JetStream or the stages"},
		{"pkg/stage", append(core, "pkg/pipeline/", "pkg/sharepoint/"), "the stage kit is where the two sides meet"},
		{"pkg/stage/", append(core, "pkg/pipeline/", "pkg/sharepoint/", "pkg/stage"), "a stage uses the kit, never another stage"},
		{"pkg/stage/registry", []string{"pkg/stage", "pkg/stage/"}, "the stage table lists every stage"},
		{"pkg/preflight", append(core, "pkg/pipeline/", "pkg/sharepoint/"),
			"preflight checks, before a first export, the NATS and SharePoint parts the stages will use; it runs no stage"},
		{"pkg/estimate", append(core, "pkg/sharepoint/sizing"), "estimates count a plan's jobs (the planner's specs) and time them; they run nothing"},
		{"pkg/inventory", core, "the inventory knows the records, not the pipeline that carries them"},
		{"pkg/downstream/", append(core, "pkg/pipeline/", "pkg/inventory"), "downstream consumers read the pipeline's subjects"},
		{"pkg/client", append(core, "pkg/pipeline/"), "the client library reads the pipeline's subjects and stores, nothing of SharePoint or the stages"},
		{"pkg/runreport", append(core, "pkg/pipeline/", "pkg/client", "pkg/report"), "run reports read what the client library reads and render into the HTML report"},
		{"pkg/dashboard", append(core, "pkg/pipeline/", "pkg/client", "pkg/runreport", "pkg/sharepoint/sas", "pkg/sharepoint/throttle"),
			"the dashboard shows what the client library and the job store read, the run reports, and the throttled hosts; it redacts with the one SAS redaction"},
		{"pkg/report", nil, "the report builder is a leaf: tables and charts of plain values"},
		{"pkg/validate", append(core, "pkg/report", "pkg/inventory"),
			"validation compares two sources of items and reports on them; an inventory's latest state is one such source"},
		{"pkg/testenv", append(core, "pkg/pipeline/", "pkg/sharepoint/", "pkg/stage", "services/spsim/", "pkg/inventory"), "test environments start real parts (and fill an inventory as the pipeline would)"},
		{"services/spsim", append(core, "services/spsim/", "pkg/sharepoint/storage", "pkg/pipeline/flagenv", "pkg/pipeline/svc"),
			"the simulator shares no validation code with the client it tests"},
		{"services/", []string{"pkg/stage", "pkg/stage/"}, "a stage binary only wires its row of the stage table"},
		{"deploy", []string{""}, "deployment files and their checks: tests only, nothing imports them"},
		{"cmd/", []string{""}, "commands wire anything"},
		{"internal/", []string{""}, "module-internal tools"},
		{"deploy/", nil, "the deployment files' checks are tests only: no code of theirs ships"},
	}
}

func ruleFor(pkg string) (rule, bool) {
	var best rule
	found := false
	for _, r := range rules() {
		if (pkg == strings.TrimSuffix(r.path, "/") || strings.HasPrefix(pkg, strings.TrimSuffix(r.path, "/")+"/")) && len(r.path) >= len(best.path) {
			best, found = r, true
		}
	}
	return best, found
}

// allowed: an entry ending in "/" allows a subtree, any other one exactly that package, "" all.
func allowed(r rule, imp string) bool {
	for _, a := range r.allow {
		if a == "" || imp == a || strings.HasSuffix(a, "/") && strings.HasPrefix(imp, a) {
			return true
		}
	}
	return false
}

// TestImportRules lists every package of the module with `go list` and checks each import of
// another package of the module against its group's rule.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	n := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkg := strings.TrimPrefix(p.ImportPath, module)
		r, ok := ruleFor(pkg)
		if !ok {
			t.Errorf("%s is in no group of docs/ARCHITECTURE.md", pkg)
			continue
		}
		n++
		for _, imp := range p.Imports {
			imp, ours := strings.CutPrefix(imp, module)
			if !ours || imp == pkg {
				continue
			}
			if !allowed(r, imp) {
				t.Errorf("%s imports %s: %s", pkg, imp, r.why)
			}
		}
	}
	if n < 30 {
		t.Fatalf("checked %d packages; go list found too few", n)
	}
}

func TestRulesThemselves(t *testing.T) {
	tests := []struct {
		pkg, imp string
		ok       bool
	}{
		{"pkg/stage/parser", "pkg/stage", true},
		{"pkg/stage/parser", "pkg/stage/relay", false},
		{"pkg/stage/registry", "pkg/stage/relay", true},
		{"pkg/pipeline/bus", "pkg/sharepoint/spo", false},
		{"pkg/pipeline/bus", "pkg/pipeline/backoff", true},
		{"pkg/sharepoint/throttle", "pkg/pipeline/backoff", true},
		{"pkg/sharepoint/throttle", "pkg/pipeline/bus", false},
		{"services/spsim/server", "pkg/sharepoint/sas", false},
		{"services/spsim/server", "pkg/sharepoint/storage", true},
		{"services/parser", "pkg/stage/parser", true},
		{"services/parser", "pkg/pipeline/bus", false},
		{"cmd/amrctl/internal/devstack", "services/spsim/server", true},
	}
	for _, tt := range tests {
		r, _ := ruleFor(tt.pkg)
		if got := allowed(r, tt.imp); got != tt.ok {
			t.Errorf("%s importing %s: allowed %v, want %v (rule %q)", tt.pkg, tt.imp, got, tt.ok, r.path)
		}
	}
}
