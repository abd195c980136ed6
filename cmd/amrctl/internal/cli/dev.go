package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/progress"
	"github.com/amrpipe/amrpipe/pkg/downstream/sink"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

func devCommand() *cobra.Command {
	var (
		out                string
		rate               float64
		replicas           int
		queue, plain, logs bool
		small, large       int64
		timeout            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole pipeline on the embedded default and export the sample tenant, with live progress",
		Long: `dev starts an embedded NATS JetStream server, Azurite, the SharePoint simulator (a synthetic
tenant of several sites) and the five services in this process, submits a sample plan of about
218K items, shows a progress bar per AMR job and writes every record to a JSON Lines file.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			w := cmd.OutOrStdout()
			var logOut io.Writer
			if logs {
				logOut = cmd.ErrOrStderr()
			}
			begin := time.Now()
			fmt.Fprintln(w, "starting embedded JetStream, Azurite, the SharePoint simulator and the five services…")
			st, err := devstack.Start(ctx, devstack.Options{Profile: tenant.DefaultProfile(), Rate: rate, SimWorkers: 4,
				Replicas: replicas, Queue: queue, Plaintext: plain, Small: small, Large: large, Log: logOut, LogLevel: "info"})
			if err != nil {
				return err
			}
			defer func() {
				if cerr := st.Close(); cerr != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "amrctl: stopping the stack:", cerr)
				}
			}()
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			path := filepath.Join(out, "records.jsonl")
			sk, err := sink.Create(path)
			if err != nil {
				return err
			}
			sinkConn, sinkJS, err := st.Connect()
			if err != nil {
				return err
			}
			defer sinkConn.Close()
			sinkCtx, stopSink := context.WithCancel(ctx)
			defer stopSink()
			sinkDone := make(chan error, 1)
			go func() { sinkDone <- sink.Consume(sinkCtx, sinkJS, sk.Write) }()

			plans := testenv.DemoPlans(st.SiteURL)
			for _, p := range plans {
				if err := st.Submit(ctx, p); err != nil {
					return err
				}
			}
			fmt.Fprintf(w, "ready in %s; simulator at %s; submitted %d plans (thresholds %d / %d items)\n\n",
				time.Since(begin).Truncate(time.Millisecond), st.SimURL, len(plans), small, large)

			display := progress.New(w, term.IsTerminal(int(os.Stdout.Fd())))
			watchErr := watch(ctx, st, display)
			display.Close()
			if watchErr != nil {
				return watchErr
			}
			// Every record the parser published is in the stream; let the sink catch up with it.
			got, err := st.Records(ctx)
			if err != nil {
				return err
			}
			if err := sk.WaitRecords(ctx, int64(got.Records)); err != nil {
				return fmt.Errorf("sink has %d of %d records: %w", sk.Records(), got.Records, err)
			}
			stopSink()
			if err := <-sinkDone; err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			if err := sk.Close(); err != nil {
				return err
			}
			return summarize(ctx, w, st, display.Summary(), got, path, time.Since(begin))
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "out", "directory for records.jsonl")
	f.Float64Var(&rate, "rate", 20000, "simulator export speed per AMR job, objects/s (SharePoint's lab figure is ~400; 0 = unlimited)")
	f.IntVar(&replicas, "replicas", 1, "replicas of every service")
	f.BoolVar(&queue, "queue", false, "SharePoint also reports through an Azure Queue, read beside progress polling")
	f.BoolVar(&plain, "plaintext", false, "turn manifest encryption off")
	f.BoolVar(&logs, "logs", false, "print the services' logs to stderr")
	f.Int64Var(&small, "small", testenv.DemoSmall, "planner: folders under this many items are batched into multi-URL jobs")
	f.Int64Var(&large, "large", testenv.DemoLarge, "planner: folders over this many items are probed and split")
	f.DurationVar(&timeout, "timeout", 15*time.Minute, "give up after this long")
	return cmd
}

// watch feeds job records to the display until the pipeline is idle. The live watch keeps the bars
// moving; a snapshot every half second makes sure no final state is missed (a KV watcher of a
// busy bucket can be reset under load and skip intermediate values).
func watch(ctx context.Context, st *devstack.Stack, d *progress.Display) error {
	changes, err := st.Store.Watch(ctx, "")
	if err != nil {
		return err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				changes = nil // the snapshots carry on
				continue
			}
			if c.Record != nil {
				d.Update(c.Record)
			}
		case <-tick.C:
			jobs, err := st.Jobs(ctx)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				d.Update(j)
			}
			if !d.AllDone() {
				continue
			}
			idle, _, err := st.Idle(ctx)
			if err != nil {
				return err
			}
			if idle {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func summarize(ctx context.Context, w io.Writer, st *devstack.Stack, s progress.Summary, got *testenv.Downstream, path string, took time.Duration) error {
	var states []string
	for k, v := range s.ByState {
		states = append(states, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(states)
	byType := map[string]int{}
	for o, n := range got.Content {
		byType[o.Type] += n
	}
	var types []string
	for k, v := range byType {
		types = append(types, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(types)
	fmt.Fprintf(w, "\n%d AMR jobs (%s), %d objects exported by SharePoint\n", s.Jobs, strings.Join(states, ", "), s.Objects)
	fmt.Fprintf(w, "%d records in %d batches downstream: %s\n", got.Records, got.Batches, strings.Join(types, ", "))
	fmt.Fprintf(w, "records: %s\n", path)
	fmt.Fprintf(w, "took %s (%.0f records/s end to end)\n", took.Truncate(time.Millisecond), float64(got.Records)/took.Seconds())
	if s.ByState["failed"] > 0 {
		return fmt.Errorf("%d jobs failed (amrctl jobs on a deployed system shows why)", s.ByState["failed"])
	}
	return nil
}
