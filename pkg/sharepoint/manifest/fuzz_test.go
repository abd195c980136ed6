package manifest

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzParse checks that the parser never panics, that its errors carry an
// offset inside the input, and that on every input encoding/xml accepts (the
// reference tokenizer, which adds only the no-DTD and one-root rules) the
// scanner yields the same elements and attributes, and the same records.
func FuzzParse(f *testing.F) {
	for _, data := range fixtures(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := recordsOf(data, false)
		var se *SyntaxError
		if err != nil && (!errors.As(err, &se) || se.Offset < 0 || se.Offset > int64(len(data))) {
			t.Fatalf("error without a valid offset: %v", err)
		}
		// The same input under tight collection and depth bounds: still only
		// typed errors inside the input.
		if _, err := parseAll(data, Options{MaxChildren: 2, MaxDepth: 6, BufferSize: 256}); err != nil &&
			(!errors.As(err, &se) || se.Offset < 0 || se.Offset > int64(len(data))) {
			t.Fatalf("bounded parse: error without a valid offset: %v", err)
		}

		opts := Options{MaxTokenBytes: 64 << 10, BufferSize: 256}.withDefaults()
		want, refErr := collectTokens(newStdSource(bytes.NewReader(data), opts).next)
		if refErr != nil {
			return // encoding/xml (or a document rule) rejects the input
		}
		got, scanErr := collectTokens(newScanner(bytes.NewReader(data), opts).next)
		if scanErr != nil && !errors.Is(scanErr, ErrLimit) { // the reference has no token bound
			t.Fatalf("scanner rejects what encoding/xml accepts: %v\nreference tokens:\n%s", scanErr, want)
		}
		if scanErr == nil && got != want {
			t.Fatalf("tokens differ\nscanner:\n%s\nreference:\n%s", got, want)
		}
		if scanErr != nil || bytes.ContainsAny(data, "\t\r\n") || bytes.Contains(data, []byte("&#")) {
			return // values may differ by white space normalisation
		}
		ref, refErr := recordsOf(data, true)
		if (err == nil) != (refErr == nil) || len(recs) != len(ref) {
			t.Fatalf("scanner: %d records, %v; reference: %d records, %v", len(recs), err, len(ref), refErr)
		}
		for i := range recs {
			if !proto.Equal(recs[i], ref[i]) {
				t.Fatalf("record %d differs:\nscanner   %v\nreference %v", i, recs[i], ref[i])
			}
		}
	})
}

// FuzzScanName checks scanName, which skips ASCII letters eight bytes at a time, against the
// byte-by-byte rule it speeds up, from every start offset.
func FuzzScanName(f *testing.F) {
	for _, s := range []string{"TimeLastModified=\"x\"", "Id=", "a:b-c.d_e9=", "ABCDEFGHabcdefgh@[`{", "Nämé=1", "xmlns:xsi ",
		"abcdefg\x00hij", "ZZZZZZZZZZZZZZZZZZZZZZZZ", "_Tag>", "aaaaaaaa\xffbbb"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for start := range b {
			end, acc := start, byte(0)
			for end < len(b) && nameTab[b[end]] != 0 {
				acc |= b[end]
				end++
			}
			gotEnd, gotHigh := scanName(b, start)
			if gotEnd != end || gotHigh != (acc >= 0x80) {
				t.Fatalf("scanName(%q, %d) = %d, %v; want %d, %v", b, start, gotEnd, gotHigh, end, acc >= 0x80)
			}
		}
	})
}
