package jobstore_test

import (
	"flag"
	"testing"

	"github.com/amrpipe/amrpipe/internal/docgen"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
)

var update = flag.Bool("update", false, "rewrite the lifecycle diagram in docs/ARCHITECTURE.md")

// TestArchitectureDocShowsTheLifecycle: the diagram in docs/ARCHITECTURE.md is drawn from the
// lifecycle table itself (go test ./pkg/pipeline/jobstore -update redraws it).
func TestArchitectureDocShowsTheLifecycle(t *testing.T) {
	const path = "../../../docs/ARCHITECTURE.md"
	const begin, end = "<!-- lifecycle: generated from jobstore.Rules; go test ./pkg/pipeline/jobstore -update -->\n```mermaid\n", "```\n<!-- lifecycle: end -->"
	docgen.Section(t, path, begin, end, jobstore.Diagram(), *update, "go test ./pkg/pipeline/jobstore -update")
}
