// Package cli holds amrctl's commands.
package cli

import (
	"context"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/pipeline/buildinfo"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
)

// Root is the amrctl command tree.
func Root() *cobra.Command {
	root := &cobra.Command{
		Use:           "amrctl",
		Short:         "Run and operate amrpipe, the SharePoint AMR metadata export pipeline",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Read().String("amrctl"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	addOutputFlag(root)
	connect := addConnectionFlags(root)
	root.AddCommand(devCommand(), planCommand(connect), jobsCommand(connect), tailCommand(connect), topologyCommand(connect),
		reportCommand(connect), validateCommand(), diffCommand(connect), versionCommand(), dlqCommand(connect), jobCommand(connect),
		preflightCommand(connect), estimateCommand(connect), dashboardCommand(connect))
	usageArgs(root)
	return root
}

type connectFunc func(ctx context.Context) (*nats.Conn, jetstream.JetStream, error)

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// openStore connects and opens the job store; closeConn closes the connection.
func openStore(ctx context.Context, connect connectFunc) (store *jobstore.Store, closeConn func(), err error) {
	nc, js, err := connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	if store, err = jobstore.Open(ctx, js, time.Now); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return store, nc.Close, nil
}
