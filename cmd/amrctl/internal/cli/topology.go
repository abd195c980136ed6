package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// topologyFlags are the options of apply and verify.
type topologyFlags struct {
	replicas   int
	maxBytes   []string
	downstream []string
	allowLower bool
	onDisk     bool
}

// options reads the flags into topology options; a size for a name the topology does not have
// is an error (a typo would silently change nothing).
func (f *topologyFlags) options() (topology.Options, error) {
	o := topology.Options{Replicas: f.replicas, Downstream: f.downstream, AllowLower: f.allowLower, ManifestsOnDisk: f.onDisk,
		MaxBytes: map[string]int64{}}
	var known []string
	for _, st := range topology.Stores(topology.Options{}) {
		known = append(known, st.Name)
	}
	for _, kv := range f.maxBytes {
		name, size, ok := strings.Cut(kv, "=")
		if !ok {
			return o, fmt.Errorf("--max-bytes %q: want NAME=SIZE, e.g. AMR_RECORDS=20GiB", kv)
		}
		if !slices.Contains(known, name) {
			return o, fmt.Errorf("--max-bytes %q: no stream, bucket or object store %q (one of %s)", kv, name, strings.Join(known, ", "))
		}
		n, err := topology.ParseBytes(size)
		if err != nil {
			return o, fmt.Errorf("--max-bytes %q: %w", kv, err)
		}
		o.MaxBytes[name] = n
	}
	for _, d := range f.downstream {
		if err := topology.CheckToken(d); err != nil {
			return o, fmt.Errorf("--downstream %q: %w", d, err)
		}
	}
	return o, nil
}

func topologyCommand(connect connectFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Apply, verify and show the pipeline's JetStream streams, buckets and consumers",
		Long: `The topology is applied once, by 'amrctl topology apply' (or by one service started with
-apply-topology), and verified by every service at start. Applying never lowers a replica count
or shrinks a size limit unless --allow-lower, never sets a limit below what a stream holds, and
never deletes a consumer. docs/pipeline.md lists every stream, bucket, consumer and lifetime.`,
	}
	var f topologyFlags
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Create or update every stream, bucket, object store and durable consumer, then show them",
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options()
			if err != nil {
				return err
			}
			return withJetStream(cmd.Context(), connect, func(ctx context.Context, js jetstream.JetStream) error {
				if err := topology.Ensure(ctx, js, o); err != nil {
					return err
				}
				if err := topology.Verify(ctx, js, topology.Options{Replicas: o.Replicas, Downstream: o.Downstream}); err != nil {
					return err
				}
				rows := topologyRows(ctx, js)
				return render(cmd, map[string]any{"applied": true, "replicas": max(o.Replicas, 1), "stores": rows}, func(w io.Writer) error {
					fmt.Fprintf(w, "topology applied (%d replicas)\n", max(o.Replicas, 1))
					return writeTopology(w, rows)
				})
			})
		},
	}
	af := apply.Flags()
	af.IntVar(&f.replicas, "replicas", 1, "replicas of every stream, bucket and object store (3 in a production cluster)")
	af.StringArrayVar(&f.maxBytes, "max-bytes", nil, "size limit of one stream, bucket or object store, NAME=SIZE (e.g. AMR_RECORDS=20GiB); repeatable")
	af.StringSliceVar(&f.downstream, "downstream", nil, "durable consumers of AMR_RECORDS that downstream systems read with (default \""+topology.DefaultDownstream+"\"); records are kept until each acknowledged them")
	af.BoolVar(&f.allowLower, "allow-lower", false, "lower replicas and size limits that exist (never below what a stream holds)")
	af.BoolVar(&f.onDisk, "manifests-on-disk", false, "create the decrypted manifests' object store ("+topology.ObjectManifests+
		") in file storage instead of memory; an existing store keeps its storage (docs/pipeline.md)")

	var vf topologyFlags
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the topology as a service does at start; fails naming what is missing or configured otherwise",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withJetStream(cmd.Context(), connect, func(ctx context.Context, js jetstream.JetStream) error {
				if err := topology.Verify(ctx, js, topology.Options{Replicas: vf.replicas, Downstream: vf.downstream}); err != nil {
					return err
				}
				return render(cmd, map[string]any{"verified": true}, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, "topology verified")
					return err
				})
			})
		},
	}
	verify.Flags().IntVar(&vf.replicas, "replicas", 1, "least replicas every stream must have")
	verify.Flags().StringSliceVar(&vf.downstream, "downstream", nil, "downstream consumers that must exist (default: any durable consumer of AMR_RECORDS)")

	show := &cobra.Command{
		Use:   "show",
		Short: "Every stream, bucket and object store with its replicas, fill and size limit",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withJetStream(cmd.Context(), connect, func(ctx context.Context, js jetstream.JetStream) error {
				rows := topologyRows(ctx, js)
				return render(cmd, rows, func(w io.Writer) error { return writeTopology(w, rows) })
			})
		},
	}
	cmd.AddCommand(apply, verify, show)
	return cmd
}

func withJetStream(ctx context.Context, connect connectFunc, fn func(context.Context, jetstream.JetStream) error) error {
	nc, js, err := connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return fn(ctx, js)
}

// topologyRow is one stream, bucket or object store as `topology show` prints it.
type topologyRow struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`
	Replicas  int     `json:"replicas"`
	Messages  uint64  `json:"messages"`
	Bytes     uint64  `json:"bytes"`
	MaxBytes  int64   `json:"max_bytes"` // 0: no limit
	Fill      float64 `json:"fill_percent"`
	Consumers int     `json:"consumers"`
	Error     string  `json:"error,omitempty"`
}

// topologyRows reads every stream, bucket and object store; one that cannot be read carries
// its error.
func topologyRows(ctx context.Context, js jetstream.JetStream) []topologyRow {
	var rows []topologyRow
	for _, st := range topology.Stores(topology.Options{}) {
		row := topologyRow{Name: st.Name, Kind: fmt.Sprint(st.Kind)}
		s, err := js.Stream(ctx, st.Stream)
		if err != nil {
			row.Error = err.Error()
			rows = append(rows, row)
			continue
		}
		info := s.CachedInfo()
		row.Replicas, row.Messages, row.Bytes, row.Consumers = info.Config.Replicas, info.State.Msgs, info.State.Bytes, info.State.Consumers
		if row.MaxBytes = max(info.Config.MaxBytes, 0); row.MaxBytes > 0 {
			row.Fill = 100 * float64(info.State.Bytes) / float64(row.MaxBytes)
		}
		rows = append(rows, row)
	}
	return rows
}

// writeTopology writes one line per stream, bucket and object store.
func writeTopology(w io.Writer, rows []topologyRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tREPLICAS\tMESSAGES\tBYTES\tMAX BYTES\tFILL\tCONSUMERS")
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t%s\n", r.Name, r.Kind, r.Error)
			continue
		}
		limit, fill := "none", "-"
		if r.MaxBytes > 0 {
			limit, fill = topology.FormatBytes(r.MaxBytes), fmt.Sprintf("%.1f%%", r.Fill)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%d\n", r.Name, r.Kind, r.Replicas, r.Messages, r.Bytes, limit, fill, r.Consumers)
	}
	return tw.Flush()
}
