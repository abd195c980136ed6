package registry_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s := string(data)
			i, j := strings.Index(s, begin), strings.Index(s, end)
			if i < 0 || j < i {
				t.Fatalf("%s has no generated flag section (markers %q … %q)", path, begin, end)
			}
			want := s[:i+len(begin)] + d.FlagsMarkdown() + s[j:]
			if want == s {
				return
			}
			if *update {
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			t.Errorf("%s: the flag section differs from the stage table; run go test ./pkg/stage/registry -update", path)
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
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no stage table markers", path)
	}
	want := s[:i+len(begin)] + b.String() + s[j:]
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the stage table in %s differs from the registry; run go test ./pkg/stage/registry -update", path)
}

func ticks(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "`" + s + "`"
	}
	return strings.Join(out, ", ")
}
