package manifest

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest/manifestgen"
)

func benchmarkParse(b *testing.B, stdlib bool) {
	var buf bytes.Buffer
	if _, err := manifestgen.Write(&buf, manifestgen.Config{Seed: 1, TargetBytes: 4 << 20, Tricky: true}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		p := NewParser(bytes.NewReader(data), Options{StdlibXML: stdlib})
		for {
			_, err := p.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkParse measures the parser on a synthetic attribute-heavy manifest.
func BenchmarkParse(b *testing.B) { benchmarkParse(b, false) }

// BenchmarkParseStdlibXML measures the same extraction tokenized by encoding/xml.
func BenchmarkParseStdlibXML(b *testing.B) { benchmarkParse(b, true) }
