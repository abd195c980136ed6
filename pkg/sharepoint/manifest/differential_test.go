package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest/manifestgen"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestDifferentialGenerated parses generated manifests with the scanner and
// with the encoding/xml reference tokenizer: the records must be identical.
func TestDifferentialGenerated(t *testing.T) {
	tests := []struct {
		seed   uint64
		size   int64
		window int
	}{
		{seed: 1, size: 256 << 10},
		{seed: 2, size: 1 << 20, window: 1 << 10}, // tiny window: constructs split at every refill
		{seed: 3, size: 1 << 20, window: 7 << 10},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("seed%d", tt.seed), func(t *testing.T) {
			var buf bytes.Buffer
			st, err := manifestgen.Write(&buf, manifestgen.Config{Seed: tt.seed, TargetBytes: tt.size, Tricky: true})
			if err != nil {
				t.Fatal(err)
			}
			fast, err := parseAll(buf.Bytes(), Options{JobID: "j", SourceFile: "Manifest.xml", BufferSize: tt.window})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := parseAll(buf.Bytes(), Options{JobID: "j", SourceFile: "Manifest.xml", StdlibXML: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(fast) != st.Records || len(ref) != st.Records {
				t.Fatalf("records: scanner %d, reference %d, generator %d", len(fast), len(ref), st.Records)
			}
			for i := range fast {
				if !proto.Equal(fast[i], ref[i]) {
					t.Fatalf("record %d differs:\nscanner   %v\nreference %v", i, fast[i], ref[i])
				}
			}
			if c := tally(fast); c.files == 0 || c.items == 0 || c.folders == 0 || c.roleAssignments == 0 {
				t.Errorf("generated manifest lacks a kind of record: %+v", c)
			}
		})
	}
}

// TestTruncatedFixtures cuts each well-formed fixture at every byte of its
// first and last 300 bytes and at every 7th byte in between: parsing must fail
// with an offset inside the input (or succeed when only trailing white space
// was cut), never panic.
func TestTruncatedFixtures(t *testing.T) {
	for f, data := range fixtures(t) {
		if _, err := parseAll(data, Options{}); err != nil {
			continue // the not-well-formed samples
		}
		complete := len(bytes.TrimRight(data, " \t\r\n"))
		for n := 0; n < len(data); n++ {
			if n > 300 && n < len(data)-300 && n%7 != 0 {
				continue
			}
			_, err := parseAll(data[:n], Options{BufferSize: 64})
			if n >= complete {
				if err != nil {
					t.Errorf("%s cut at %d (only white space lost): %v", f, n, err)
				}
				continue
			}
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > int64(n) {
				t.Fatalf("%s cut at %d: err = %v", f, n, err)
			}
		}
	}
}

// TestMemoryFlat parses a large manifest streamed from the generator and
// checks that the heap never holds more than a small bound, so memory does not
// grow with the file.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 16 MB")
	}
	const size = 16 << 20
	pr, pw := io.Pipe()
	go func() {
		_, err := manifestgen.Write(pw, manifestgen.Config{Seed: 9, TargetBytes: size})
		pw.CloseWithError(err)
	}()
	p := NewParser(pr, Options{})
	var ms runtime.MemStats
	var peak uint64
	for n := 0; ; n++ {
		_, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n%4000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	t.Logf("peak heap in use %.1f MiB", float64(peak)/(1<<20))
	if peak > 8<<20 {
		t.Errorf("heap in use reached %d MiB while streaming %d MiB", peak>>20, size>>20)
	}
}

// collectTokens renders a tokenizer's output as text, with attribute values
// decoded and white space characters mapped to spaces (the scanner normalises
// them as XML requires; encoding/xml does not).
func collectTokens(next func() (*token, error)) (string, error) {
	var b strings.Builder
	ws := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")
	for {
		tok, err := next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return b.String(), err
		}
		if tok.kind == tokEnd {
			fmt.Fprintf(&b, "</%s>\n", tok.name)
			continue
		}
		fmt.Fprintf(&b, "<%s", tok.name)
		for i := range tok.attrs {
			a := &tok.attrs[i]
			v := tok.attrValue(a)
			if a.flags&vFinal == 0 {
				var bad int
				var msg string
				if v, bad, msg = appendValue(nil, v, a.flags); bad >= 0 {
					return b.String(), errors.New(msg)
				}
			}
			fmt.Fprintf(&b, " %s=%q", tok.attrName(a), ws.Replace(string(v)))
		}
		b.WriteString(">\n")
	}
}

func recordsOf(data []byte, stdlib bool) ([]*amrpipev1.Record, error) {
	return parseAll(data, Options{StdlibXML: stdlib, MaxTokenBytes: 64 << 10, BufferSize: 256})
}
