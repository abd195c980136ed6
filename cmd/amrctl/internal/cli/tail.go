package cli

import (
	"bufio"
	"context"
	"errors"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/amrpipe/amrpipe/pkg/downstream/sink"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func tailCommand(connect connectFunc) *cobra.Command {
	var job string
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print metadata records as JSON lines, from the start of the records stream",
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer nc.Close()
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			opts := protojson.MarshalOptions{UseProtoNames: true}
			err = sink.Consume(cmd.Context(), js, func(_ string, b *amrpipev1.RecordBatch) error {
				if job != "" && b.GetJobId() != job {
					return nil
				}
				for _, r := range b.GetRecords() {
					line, err := opts.Marshal(r)
					if err != nil {
						return err
					}
					w.Write(line)
					w.WriteByte('\n')
				}
				return w.Flush()
			})
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&job, "job", "", "only records of this AMR job id")
	return cmd
}
