package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/inventory"
)

func tailCommand(connect connectFunc) *cobra.Command {
	var job, since string
	var follow bool
	var limit int
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the metadata records the records stream holds, each once (-o json: JSON lines, docs/records.md)",
		Long: "Print the records AMR_RECORDS holds, de-duplicated on (job_id, source_file, sequence), through a reader " +
			"that takes nothing from the declared consumers. --job and --since filter on the server (the job's subject " +
			"amr.records.<job>; JetStream's start time). It stops at the end of the stream unless --follow, and after " +
			"--limit records. -o json prints one JSON record per line (docs/records.md); -o table a compact table.",
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			from, err := parseSince("--since", since, time.Now())
			if err != nil {
				return err
			}
			if limit < 0 {
				return usageErrorf("--limit %d: want 0 (no limit) or more", limit)
			}
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			c, closeConn, err := connectClient(ctx, connect)
			if err != nil {
				return err
			}
			defer closeConn()
			opts := []client.ConsumeOption{client.WithFollow(follow)}
			if job != "" {
				opts = append(opts, client.WithJobs(job))
			}
			if !from.IsZero() {
				opts = append(opts, client.WithSince(from))
			}
			r, err := c.Reader(ctx, opts...)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, r.Close()) }()
			h := client.JSONLines(cmd.OutOrStdout())
			if format == OutputTable {
				h = recordTable(cmd.OutOrStdout())
			}
			if limit > 0 {
				h = limitRecords(h, limit, stop)
			}
			if err := r.RunBatches(ctx, h); err != nil {
				return err
			}
			// Run returns nil when its context ends: say so when the user's did, not --limit.
			return cmd.Context().Err()
		},
	}
	cmd.Flags().StringVar(&job, "job", "", "only records of this AMR job id (filtered on the server)")
	cmd.Flags().BoolVar(&follow, "follow", false, "wait for new records until interrupted")
	cmd.Flags().StringVar(&since, "since", "", "start at records stored since: a duration back from now (90m) or an RFC 3339 time")
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after this many records (0: no limit)")
	return cmd
}

// limitRecords hands at most n records to h, then calls stop (which ends the reader).
func limitRecords(h client.BatchHandler, n int, stop func()) client.BatchHandler {
	left := n
	return func(ctx context.Context, b *client.Batch) error {
		if left <= 0 {
			return nil
		}
		if len(b.Records) > left {
			cut := *b
			cut.Records = b.Records[:left]
			b = &cut
		}
		left -= len(b.Records)
		if err := h(ctx, b); err != nil {
			return err
		}
		if left == 0 {
			stop()
		}
		return nil
	}
}

// recordTable prints records as a compact table: path, type, size and modified time, as the
// inventory reads them (inventory.ObjectOf); the header once.
func recordTable(w io.Writer) client.BatchHandler {
	bw := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	header := false
	return func(_ context.Context, b *client.Batch) error {
		if !header {
			fmt.Fprintln(tw, "PATH\tTYPE\tSIZE\tMODIFIED\tJOB")
			header = true
		}
		for _, r := range b.Records {
			o := inventory.ObjectOf(r)
			path := o.URL
			if path == "" {
				path = o.Name
			}
			if path == "" {
				path = r.GetObjectId()
			}
			size, modified := "-", "-"
			if o.Size > 0 || o.Type == "SPFile" {
				size = fmt.Sprint(o.Size)
			}
			if !o.Modified.IsZero() {
				modified = o.Modified.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", path, r.GetObjectType(), size, modified, r.GetJobId())
		}
		// A batch is acknowledged once its lines are out (as JSONLines): flush per batch, so
		// columns align within a batch.
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
		return nil
	}
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
