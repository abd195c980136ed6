package buildinfo_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amrpipe/amrpipe/pkg/pipeline/buildinfo"
)

func TestServiceVersionAndVersionLine(t *testing.T) {
	tests := []struct {
		name        string
		info        buildinfo.Info
		wantService string
		wantLine    string
	}{
		{"a tagged module", buildinfo.Info{Version: "v1.4.0", Revision: "abc123", GoVersion: "go1.26.8"},
			"v1.4.0", "decryptor v1.4.0 (revision abc123, go1.26.8)"},
		{"a checkout built with VCS stamping", buildinfo.Info{Version: "(devel)", Revision: "abc123-dirty", GoVersion: "go1.26.8"},
			"abc123-dirty", "decryptor (devel) (revision abc123-dirty, go1.26.8)"},
		{"a build without VCS stamping", buildinfo.Info{Version: "(devel)", Revision: "unknown", GoVersion: "go1.26.8"},
			"(devel)", "decryptor (devel) (revision unknown, go1.26.8)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.info.ServiceVersion(); got != tt.wantService {
				t.Errorf("ServiceVersion = %q, want %q", got, tt.wantService)
			}
			if got := tt.info.String("decryptor"); got != tt.wantLine {
				t.Errorf("String = %q, want %q", got, tt.wantLine)
			}
		})
	}
}

func TestReadAndMetric(t *testing.T) {
	info := buildinfo.Read()
	if info.GoVersion != runtime.Version() || info.Version == "" || info.Revision == "" {
		t.Fatalf("Read = %+v", info)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(info.Collector())
	want := `# HELP amr_build_info The build of this process (always 1): version, VCS revision and Go version.
# TYPE amr_build_info gauge
amr_build_info{goversion="` + info.GoVersion + `",revision="` + info.Revision + `",version="` + info.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "amr_build_info"); err != nil {
		t.Fatal(err)
	}
}
