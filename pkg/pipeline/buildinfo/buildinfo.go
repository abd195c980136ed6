// Package buildinfo says which build a binary is: its version and VCS revision as the Go
// toolchain stamped them (runtime/debug.ReadBuildInfo), for --version, the amr_build_info metric
// and the service.version of traces. One way for every binary: nothing is set with -ldflags.
package buildinfo

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info describes a build.
type Info struct {
	// Version is the main module's version: a tag or pseudo-version when built with go install
	// module@version or from a tagged checkout, "(devel)" for a plain go build of a checkout.
	Version string
	// Revision is the VCS commit the binary was built from ("unknown" without VCS stamping, as
	// in go test or -buildvcs=false), with "-dirty" when the work tree had changes.
	Revision string
	// GoVersion is the toolchain that built it.
	GoVersion string
}

// Read returns the running binary's build.
func Read() Info {
	info := Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.Version = cmp.Or(bi.Main.Version, info.Version)
	info.GoVersion = cmp.Or(bi.GoVersion, info.GoVersion)
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Revision != "unknown" {
		info.Revision += "-dirty"
	}
	return info
}

// String is the --version line of the binary named name.
func (i Info) String(name string) string {
	return fmt.Sprintf("%s %s (revision %s, %s)", name, i.Version, i.Revision, i.GoVersion)
}

// ServiceVersion is what traces name as service.version: the module version, or the revision
// when the version says no more than "(devel)".
func (i Info) ServiceVersion() string {
	if i.Version == "(devel)" && i.Revision != "unknown" {
		return i.Revision
	}
	return i.Version
}

// Collector is the amr_build_info gauge: always 1, labelled with version, revision and
// goversion, so that dashboards can tell which build each replica runs.
func (i Info) Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "amr_build_info",
		Help:        "The build of this process (always 1): version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": i.Revision, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}

// IsVersionFlag reports whether arg asks for the version (-version or --version).
func IsVersionFlag(arg string) bool { return arg == "-version" || arg == "--version" }
