package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// jsonOptions is the one JSON mapping of amrpipe's messages (docs/records.md, "JSON"): protojson
// with the .proto field names (snake_case), fields at their zero value left out, 64-bit integers
// as strings, timestamps in RFC 3339, enums by name.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true}

// MarshalJSON encodes a record (or any amrpipe message) in the JSON mapping of docs/records.md,
// compact, on one line. protojson varies its spacing on purpose (so that nobody relies on its
// bytes); compacting it makes one message always the same bytes.
func MarshalJSON(m proto.Message) ([]byte, error) {
	data, err := jsonOptions.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(data))
	if err := json.Compact(&out, data); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// UnmarshalJSON decodes what MarshalJSON wrote (unknown fields are an error).
func UnmarshalJSON(data []byte, m proto.Message) error { return protojson.Unmarshal(data, m) }

// JSONLines returns a BatchHandler that writes each record as one line of JSON (MarshalJSON) to
// w, and flushes the batch before it returns: a batch is acknowledged only once its lines are
// written.
func JSONLines(w io.Writer) BatchHandler {
	bw := bufio.NewWriterSize(w, 256<<10)
	return func(_ context.Context, b *Batch) error {
		for _, r := range b.Records {
			line, err := MarshalJSON(r)
			if err != nil {
				return fmt.Errorf("encode record %d of %s: %w", r.GetSequence(), b.MsgID, err)
			}
			bw.Write(line)
			bw.WriteByte('\n')
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
		return nil
	}
}
