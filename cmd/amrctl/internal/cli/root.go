// Package cli holds amrctl's commands.
package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// Root is the amrctl command tree.
func Root() *cobra.Command {
	root := &cobra.Command{
		Use:           "amrctl",
		Short:         "Run and operate amrpipe, the SharePoint AMR metadata export pipeline",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	natsURL := root.PersistentFlags().String("nats-url", envOr("AMR_NATS_URL", nats.DefaultURL), "NATS server(s) of a deployed system (AMR_NATS_URL)")
	connect := func(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
		nc, err := nats.Connect(*natsURL, nats.Name("amrctl"), nats.Timeout(10*time.Second))
		if err != nil {
			return nil, nil, fmt.Errorf("connect to %s: %w", *natsURL, err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return nc, js, nil
	}
	root.AddCommand(devCommand(), planCommand(connect), jobsCommand(connect), tailCommand(connect), topologyCommand(connect),
		reportCommand(connect), validateCommand(), diffCommand(connect))
	return root
}

type connectFunc func(ctx context.Context) (*nats.Conn, jetstream.JetStream, error)

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
