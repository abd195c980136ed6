package jobstore_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
)

var update = flag.Bool("update", false, "rewrite the lifecycle diagram in docs/ARCHITECTURE.md")

// TestArchitectureDocShowsTheLifecycle: the diagram in docs/ARCHITECTURE.md is drawn from the
// lifecycle table itself (go test ./pkg/pipeline/jobstore -update redraws it).
func TestArchitectureDocShowsTheLifecycle(t *testing.T) {
	const path = "../../../docs/ARCHITECTURE.md"
	const begin, end = "<!-- lifecycle: generated from jobstore.Rules; go test ./pkg/pipeline/jobstore -update -->\n```mermaid\n", "```\n<!-- lifecycle: end -->"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no lifecycle diagram markers", path)
	}
	want := s[:i+len(begin)] + jobstore.Diagram() + s[j:]
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the lifecycle diagram in %s differs from jobstore.Rules; run go test ./pkg/pipeline/jobstore -update", path)
}
