package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/demo"
)

// TestDevSaysWhatAStopKept: a demo cut short by Ctrl-C exits 130 and a timed-out one exits 1;
// both say which jobs had not finished and list what the output directory keeps, the inventory
// marked partial.
func TestDevSaysWhatAStopKept(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, demo.InventoryFile), make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		interrupted bool
		code        int
		why         string
	}{
		{true, ExitInterrupted, "interrupted after 42s"},
		{false, ExitFailed, "timed out after --timeout 15m0s"},
	} {
		var out bytes.Buffer
		err := stopped(&out, tc.interrupted, 15*time.Minute, 42*time.Second, "2 running, 1 queued", demo.Kept(dir))
		if ExitCode(err) != tc.code || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("interrupted=%v: error %v (exit %d), want exit %d saying %q", tc.interrupted, err, ExitCode(err), tc.code, tc.why)
		}
		text := out.String()
		for _, want := range []string{tc.why + "; jobs not finished: 2 running, 1 queued", filepath.Join(dir, demo.InventoryFile) + " (3.0 MB)", "incomplete"} {
			if !strings.Contains(text, want) {
				t.Errorf("interrupted=%v: output lacks %q:\n%s", tc.interrupted, want, text)
			}
		}
	}
	var out bytes.Buffer
	_ = stopped(&out, true, time.Minute, time.Second, "", demo.Kept(t.TempDir()))
	if !strings.Contains(out.String(), "nothing was written yet") {
		t.Errorf("a stop before any output says:\n%s", out.String())
	}
}
