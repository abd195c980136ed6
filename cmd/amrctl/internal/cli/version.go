package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/pipeline/buildinfo"
)

// versionInfo is `amrctl version -o json`.
type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"go_version"`
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print amrctl's version, VCS revision and Go version (as --version does)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi := buildinfo.Read()
			return render(cmd, versionInfo{Version: bi.Version, Revision: bi.Revision, GoVersion: bi.GoVersion}, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, bi.String("amrctl"))
				return err
			})
		},
	}
}
