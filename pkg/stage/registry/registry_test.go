package registry_test

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/internal/docgen"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/registry"
)

var update = flag.Bool("update", false, "rewrite the flag sections of the services' READMEs")

const (
	begin = "<!-- flags: generated from the stage table; go test ./pkg/stage/registry -update -->\n"
	end   = "<!-- flags: end -->\n"
)

// TestReadmesDocumentEveryFlag: each stage's README holds the flag section the stage table
// generates, so a flag added to a stage's Config is documented (and its AMR_* variable named)
// by running this test with -update.
func TestReadmesDocumentEveryFlag(t *testing.T) {
	for _, d := range registry.All() {
		t.Run(d.Name, func(t *testing.T) {
			path := filepath.Join("..", "..", "..", "services", d.Name, "README.md")
			docgen.Section(t, path, begin, end, d.FlagsMarkdown(), *update, "go test ./pkg/stage/registry -update")
		})
	}
}

func TestTableNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range registry.All() {
		if seen[d.Name] || d.Name == "" || len(d.Consumers) == 0 {
			t.Errorf("stage %q: duplicate, unnamed or without a consumer", d.Name)
		}
		seen[d.Name] = true
		if got, err := registry.Lookup(d.Name); err != nil || got.Name != d.Name {
			t.Errorf("Lookup(%q) = %v, %v", d.Name, got.Name, err)
		}
	}
	if _, err := registry.Lookup("nope"); err == nil {
		t.Error("Lookup of an unknown stage succeeded")
	}
}

// TestArchitectureDocListsTheStages: the stage table in docs/ARCHITECTURE.md is the registry's
// (go test ./pkg/stage/registry -update rewrites it).
func TestArchitectureDocListsTheStages(t *testing.T) {
	const path = "../../../docs/ARCHITECTURE.md"
	const begin, end = "<!-- stages: generated from pkg/stage/registry; go test ./pkg/stage/registry -update -->\n", "<!-- stages: end -->"
	var b strings.Builder
	b.WriteString("| stage (binary, consumer, dead letters) | durable consumers | publishes | shared configuration | what it does |\n|---|---|---|---|---|\n")
	for _, d := range registry.All() {
		var uses []string
		for _, u := range []struct {
			bit  stage.Uses
			name string
		}{{stage.UsesSharePoint, "SharePoint"}, {stage.UsesStorage, "storage"}, {stage.UsesKEK, "KEK"}} {
			if d.Uses&u.bit != 0 {
				uses = append(uses, u.name)
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", d.Name, ticks(d.Consumers), ticks(d.Publishes), strings.Join(uses, ", "), d.Summary)
	}
	docgen.Section(t, path, begin, end, b.String(), *update, "go test ./pkg/stage/registry -update")
}

func ticks(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "`" + s + "`"
	}
	return strings.Join(out, ", ")
}
