package validate

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// maxRecordLine bounds one JSON line of a records file.
const maxRecordLine = 64 << 20

// ReadRecordsJSONL reads records written one JSON object per line (pkg/downstream/sink's format,
// protojson); name names the input in errors, which give the line.
func ReadRecordsJSONL(name string, r io.Reader) ([]*amrpipev1.Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), maxRecordLine)
	var out []*amrpipev1.Record
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		rec := &amrpipev1.Record{}
		if err := protojson.Unmarshal(b, rec); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// ReadLoginMap reads a login mapping in the format of SPMT's user mapping file: CSV without a header,
// column A the source login (or group name), column B the destination's, an optional column C
// TRUE when the destination principal is a group (accepted, not needed to compare). name names the
// input in errors, which give the row.
func ReadLoginMap(name string, r io.Reader) (map[string]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	out := map[string]string{}
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s row %d: %w", name, row, err)
		}
		if len(rec) < 2 || len(rec) > 3 {
			return nil, fmt.Errorf("%s row %d: %d columns, want source,destination[,isGroup]", name, row, len(rec))
		}
		for i, v := range rec {
			if !utf8.ValidString(v) {
				return nil, fmt.Errorf("%s row %d column %c: invalid UTF-8", name, row, 'A'+i)
			}
		}
		src, dst := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		if src == "" || dst == "" {
			return nil, fmt.Errorf("%s row %d: empty login", name, row)
		}
		if len(rec) == 3 {
			if g := strings.ToUpper(strings.TrimSpace(rec[2])); g != "TRUE" && g != "FALSE" && g != "" {
				return nil, fmt.Errorf("%s row %d column C: %q is not TRUE or FALSE", name, row, rec[2])
			}
		}
		if old, dup := out[src]; dup && old != dst {
			return nil, fmt.Errorf("%s row %d: %s mapped twice (%s, %s)", name, row, src, old, dst)
		}
		out[src] = dst
	}
}
