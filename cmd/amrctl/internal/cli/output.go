package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Output formats every command accepts through -o.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

// outputFlag is the root's persistent flag naming the output format.
const outputFlag = "output"

// addOutputFlag declares -o on the root, inherited by every command.
func addOutputFlag(root *cobra.Command) {
	root.PersistentFlags().StringP(outputFlag, "o", OutputTable, "output format: table (for people) or json (for scripts)")
}

// outputFormat is the format the command was asked for; an unknown one is a usage error.
func outputFormat(cmd *cobra.Command) (string, error) {
	f := cmd.Flag(outputFlag)
	if f == nil {
		return OutputTable, nil
	}
	switch v := f.Value.String(); v {
	case OutputTable, OutputJSON:
		return v, nil
	default:
		return "", usageErrorf("-o %q: want table or json", v)
	}
}

// render prints v as JSON with -o json, or calls table to print it for people. v may be a proto
// message, a slice of proto messages (printed with protojson's field names, so a record prints as
// it does in `amrctl tail`) or any value encoding/json takes.
func render(cmd *cobra.Command, v any, table func(w io.Writer) error) error {
	format, err := outputFormat(cmd)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if format == OutputTable {
		return table(w)
	}
	data, err := marshalJSON(v)
	if err != nil {
		return fmt.Errorf("encode the output: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		return fmt.Errorf("encode the output: %w", err)
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// protoJSON writes the .proto field names (job_id), as `amrctl tail` and docs/records.md do.
var protoJSON = protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true}

// marshalJSON encodes proto messages with protojson (alone, or as the elements of a slice) and
// anything else with encoding/json.
func marshalJSON(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return protoJSON.Marshal(m)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && rv.Type().Elem().Implements(reflect.TypeFor[proto.Message]()) {
		items := make([]json.RawMessage, rv.Len())
		for i := range items {
			b, err := protoJSON.Marshal(rv.Index(i).Interface().(proto.Message))
			if err != nil {
				return nil, err
			}
			items[i] = b
		}
		return json.Marshal(items)
	}
	return json.Marshal(v)
}
