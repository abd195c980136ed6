package chaos

// This file builds the programs the suite runs, once per run.

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/amrpipe/amrpipe/pkg/stage/registry"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// Program names besides the stages' (which are their binaries' names, services/<stage>).
const (
	progNATS = "nats-server"
	progSim  = "spsim"
)

// natsServerPkg is the nats-server the module already requires (its version is go.mod's).
const natsServerPkg = "github.com/nats-io/nats-server/v2"

// Build builds the five stage binaries, the simulator and nats-server into dir with the go
// command; race builds them with the race detector.
func Build(ctx context.Context, dir string, race bool) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	flags := []string{"build", "-o", dir + string(filepath.Separator)}
	if race {
		flags = append(flags, "-race")
	}
	pkgs := []string{"./services/" + progSim}
	for _, d := range registry.All() {
		pkgs = append(pkgs, "./services/"+d.Name)
	}
	for _, args := range [][]string{append(flags, pkgs...), {"build", "-o", filepath.Join(dir, progNATS), natsServerPkg}} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %v: %w\n%s", args, err, out)
		}
	}
	return nil
}
