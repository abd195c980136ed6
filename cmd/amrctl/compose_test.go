package main

import (
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/registry"
)

// The compose file cannot be run here (no Docker engine), so this checks what would break it
// silently: every AMR_* variable it sets is a flag's environment fallback or a documented secret of
// some service (a typo would simply be ignored by the service), and every image it builds names a
// service directory with a main package.
func TestComposeFileMatchesTheServices(t *testing.T) {
	root := filepath.Join("..", "..")
	data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Build *struct {
				Context    string            `yaml:"context"`
				Dockerfile string            `yaml:"dockerfile"`
				Args       map[string]string `yaml:"args"`
			} `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	// Every flag's environment variable and every secret of every stage in the stage table.
	known := map[string]bool{}
	for _, d := range registry.All() {
		d.FlagSet(&stage.Config{}, d.NewConfig()).VisitAll(func(f *flag.Flag) { known[flagenv.EnvName(stage.EnvPrefix, f.Name)] = true })
		for _, s := range d.Secrets() {
			known[s] = true
		}
	}
	stages := 0
	for name, s := range doc.Services {
		for k := range s.Environment {
			if strings.HasPrefix(k, "AMR_") && !known[k] {
				t.Errorf("service %s sets %s, which no service reads", name, k)
			}
		}
		if s.Build == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, s.Build.Dockerfile)); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
		dir := s.Build.Args["SERVICE"]
		if _, err := os.Stat(filepath.Join(root, "services", dir, "main.go")); err != nil {
			t.Errorf("service %s builds SERVICE=%q: %v", name, dir, err)
		}
		stages++
	}
	var names []string
	for n := range doc.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	if stages != 6 {
		t.Errorf("compose builds %d images (%v), want the five services and the simulator", stages, names)
	}
}
