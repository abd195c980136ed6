package client_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/testenv"
)

const modulePath = "github.com/amrpipe/amrpipe"

// TestGoGetFromAModuleProxy does what a vendor does: `go get github.com/amrpipe/amrpipe/pkg/client`
// in a module of their own, then builds a program using it. The module is served as a module
// proxy serves it (a zip of the repository's files, built here from git's file list, beside the
// module cache's own download directory for the dependencies), so it fails when the layout stops
// `go get`: a replace directive, a file name a module zip cannot hold, a package the client needs
// under internal/.
func TestGoGetFromAModuleProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program against a module zip of the repository")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(gomod, []byte("\nreplace")) {
		t.Fatal("go.mod has a replace directive: go get ignores it, and the module would not build for a vendor")
	}
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}

	const version = "v0.0.0-20260101000000-000000000000"
	proxy := t.TempDir()
	dir := filepath.Join(proxy, modulePath, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeModuleZip(t, filepath.Join(dir, version+".zip"), root, strings.Split(strings.TrimRight(string(files), "\x00"), "\x00"), version)
	for name, data := range map[string][]byte{
		version + ".mod":  gomod,
		version + ".info": fmt.Appendf(nil, `{"Version":%q}`, version),
		"list":            []byte(version + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	vendor := t.TempDir()
	program := `package main

import (
	"context"
	"fmt"

	"github.com/amrpipe/amrpipe/pkg/client"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func main() {
	c, err := client.Connect(context.Background(), "nats://127.0.0.1:1")
	fmt.Println(c, err, &amrpipev1.Record{})
}
`
	for name, data := range map[string]string{"go.mod": "module example.com/vendor\n\ngo 1.26.0\n", "main.go": program} {
		if err := os.WriteFile(filepath.Join(vendor, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOSUMDB=off", "GONOSUMDB=", "GOPRIVATE=",
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(strings.TrimSpace(string(modcache)), "cache", "download")))
	for _, args := range [][]string{{"get", modulePath + "/pkg/client@" + version}, {"build", "-o", os.DevNull, "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = vendor, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// writeModuleZip writes the files of root as the module zip of modulePath@version: every path
// under "<module>@<version>/", as the go command expects (it checks names and sizes when it
// extracts one).
func writeModuleZip(t *testing.T, path, root string, files []string, version string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(root, name))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(modulePath + "@" + version + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
