package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/client"
)

func tailCommand(connect connectFunc) *cobra.Command {
	var job string
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the metadata records the records stream holds as JSON lines (docs/records.md), each once",
		Long: "Print the records AMR_RECORDS holds as JSON lines, de-duplicated on (job_id, source_file, sequence), " +
			"through a reader that takes nothing from the declared consumers. Stops at the end of the stream unless --follow.",
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			c, closeConn, err := connectClient(ctx, connect)
			if err != nil {
				return err
			}
			defer closeConn()
			opts := []client.ConsumeOption{client.WithFollow(follow)}
			if job != "" {
				opts = append(opts, client.WithJobs(job))
			}
			r, err := c.Reader(ctx, opts...)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, r.Close()) }()
			return r.RunBatches(ctx, client.JSONLines(cmd.OutOrStdout()))
		},
	}
	cmd.Flags().StringVar(&job, "job", "", "only records of this AMR job id")
	cmd.Flags().BoolVar(&follow, "follow", false, "wait for new records until interrupted")
	return cmd
}

// connectClient connects and wraps the connection in the client library; closeConn closes the
// connection.
func connectClient(ctx context.Context, connect connectFunc) (c *client.Client, closeConn func(), err error) {
	nc, _, err := connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	if c, err = client.New(ctx, nc); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return c, nc.Close, nil
}
