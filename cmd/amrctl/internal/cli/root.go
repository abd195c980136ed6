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

	"github.com/amrpipe/amrpipe/pkg/pipeline/buildinfo"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
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
	natsURL := root.PersistentFlags().String("nats-url", envOr("AMR_NATS_URL", nats.DefaultURL), "NATS server(s) of a deployed system (AMR_NATS_URL)")
	natsUser := root.PersistentFlags().String("nats-user", envOr("AMR_NATS_USER", ""),
		"NATS user to connect as (AMR_NATS_USER); its password is "+svc.NATSPasswordEnv+" or the file "+svc.NATSPasswordEnv+flagenv.FileSuffix+" names")
	connect := func(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
		opts := []nats.Option{nats.Name("amrctl"), nats.Timeout(10 * time.Second)}
		if *natsUser != "" {
			var fileErr error
			lookup := flagenv.WithFiles(os.LookupEnv, os.ReadFile, func(_ string, err error) { fileErr = err })
			password, _ := lookup(svc.NATSPasswordEnv)
			if fileErr != nil {
				return nil, nil, fileErr
			}
			opts = append(opts, nats.UserInfo(*natsUser, password))
		}
		nc, err := nats.Connect(*natsURL, opts...)
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
		reportCommand(connect), validateCommand(), diffCommand(connect), preflightCommand(connect), estimateCommand(connect))
	return root
}

type connectFunc func(ctx context.Context) (*nats.Conn, jetstream.JetStream, error)

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
