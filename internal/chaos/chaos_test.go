package chaos_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/amrpipe/amrpipe/internal/chaos"
)

// TestChaos runs the suite: the short mode by default (part of `make test`), the full mode with
// AMRPIPE_CHAOS=full (`make chaos`); AMRPIPE_CHAOS_SEED replays a run. The report is logged,
// printed to stdout as markdown and written to $AMRPIPE_CHAOS_REPORT if set. A failed run keeps its
// directory (logs, stores) and prints the tail of every log; AMRPIPE_CHAOS_KEEP keeps it anyway.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: builds and runs nats-server, Azurite, the simulator and the five stages as processes")
	}
	cfg, err := chaos.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Progress = os.Stderr
	dir, err := os.MkdirTemp("", "amrpipe-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos %s mode, seed %d (replay: %s=%d), directory %s", cfg.Mode, cfg.Seed, chaos.EnvSeed, cfg.Seed, dir)
	r := chaos.NewRunner(cfg, dir)
	rep, runErr := r.Run(context.Background())
	if runErr != nil || !rep.Passed() {
		t.Logf("tail of every log:\n%s", r.Tails(40))
	}
	if err := r.Close(); err != nil {
		t.Errorf("stop the stack: %v", err)
	}
	md := rep.Markdown()
	t.Log("\n" + md)
	fmt.Println(md)
	if path := os.Getenv(chaos.EnvReport); path != "" {
		if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
			t.Errorf("write report: %v", err)
		}
	}
	if runErr != nil {
		t.Errorf("run: %v", runErr)
	}
	for _, v := range rep.Violations {
		t.Errorf("violation: %s", v)
	}
	if t.Failed() || os.Getenv(chaos.EnvKeep) != "" {
		t.Logf("kept %s", dir)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove %s: %v", dir, err)
	}
}
