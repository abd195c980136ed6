package architecture_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinariesLeaveOutWhatTheyDoNotUse keeps the default build slim (docs/benchmarks.md, Build):
// no binary links the OTLP gRPC exporter (built in with -tags otlpgrpc only) or Apache Arrow
// (azblob's container package imports it from v1.8.1 on, for a list format nothing here asks
// for: go.mod keeps azblob at v1.8.0).
func TestBinariesLeaveOutWhatTheyDoNotUse(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", module+"cmd/...", module+"services/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, unwanted := range []string{
		"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc",
		"github.com/apache/arrow-go/",
	} {
		for _, pkg := range strings.Fields(string(out)) {
			if strings.HasPrefix(pkg, unwanted) {
				t.Errorf("a binary links %s", pkg)
				break
			}
		}
	}
}
