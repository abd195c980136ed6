package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/demo"
	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/pkg/dashboard"
	"github.com/amrpipe/amrpipe/pkg/validate"
)

// defaultDashboardAddr is where `amrctl dashboard` listens: the loopback interface only, since
// the page shows tenant URLs.
const defaultDashboardAddr = "127.0.0.1:8089"

// dashboardInfo is what `amrctl dashboard -o json` prints before serving.
type dashboardInfo struct {
	URL string `json:"url"`
}

func dashboardCommand(connect connectFunc) *cobra.Command {
	var listen, validation string
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the live web dashboard: plans, jobs by state, progress, items/s and ETA, throttling, dead letters, run reports",
		Long: "Serve a web page showing the pipeline live (server-sent events, updated as JetStream changes): plans with their " +
			"status and run report, jobs by state with their progress, items/s and ETA, throttled hosts and SharePoint's " +
			"postponements, and the newest dead letters with their reasons. It runs until interrupted (Ctrl-C ends it without error).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			nc, _, err := connect(ctx)
			if err != nil {
				return err
			}
			defer nc.Close()
			srv, err := dashboard.Listen(ctx, nc, listen, dashboard.Options{ValidationReport: validation})
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			err = render(cmd, dashboardInfo{URL: srv.URL}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "dashboard: %s (Ctrl-C stops it)\n", srv.URL)
				return err
			})
			if err != nil {
				return err
			}
			return srv.Serve(ctx)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", defaultDashboardAddr, "address to serve on (host:port; port 0 picks a free one); keep it on 127.0.0.1 unless others may see tenant URLs")
	cmd.Flags().StringVar(&validation, "validation-report", "", "a validation report.html to link from the page")
	return cmd
}

// dashboardFlag is `amrctl dev`'s flag naming the dashboard's address.
const dashboardFlag = "dashboard"

// addDashboardFlag declares --dashboard on `amrctl dev`.
func addDashboardFlag(f *pflag.FlagSet) {
	f.String(dashboardFlag, "127.0.0.1:0", `serve the live dashboard on this address (port 0: a free one; "" turns it off)`)
}

// startDevDashboard serves the dashboard of `amrctl dev` on the stack's connection, linking the
// demo's validation report, until ctx ends or the returned stop is called (which waits for it).
func startDevDashboard(ctx context.Context, cmd *cobra.Command, w io.Writer, st *devstack.Stack, out string) (stop func() error, err error) {
	addr, err := cmd.Flags().GetString(dashboardFlag)
	if err != nil || addr == "" {
		return func() error { return nil }, err
	}
	srv, err := dashboard.Listen(ctx, st.Conn, addr, dashboard.Options{ValidationReport: filepath.Join(out, demo.ValidationDir, validate.HTMLFile)})
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", dashboardFlag, addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	fmt.Fprintln(w, "dashboard:", srv.URL)
	return func() error {
		cancel()
		return <-done
	}, nil
}
