package quickxorhash_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/crypto/quickxorhash"
)

type vector struct {
	name, input, want string
	length            int
}

// readVectors parses a TSV of name, length, input, expected base64 (and an
// optional source column); '#' lines and the header are skipped.
func readVectors(t *testing.T, file string) []vector {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}()
	var vs []vector
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "name\t") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) < 4 {
			t.Fatalf("%s: bad row %q", file, line)
		}
		n, err := strconv.Atoi(cols[1])
		if err != nil {
			t.Fatalf("%s: row %s: %v", file, cols[0], err)
		}
		vs = append(vs, vector{name: cols[0], length: n, input: cols[2], want: cols[3]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

// errSkip marks inputs that are not shipped with the repository.
var errSkip = errors.New("input not shipped")

// materialise builds a vector's input from its description.
func materialise(v vector) ([]byte, error) {
	kind, arg, _ := strings.Cut(v.input, ":")
	switch kind {
	case "hex":
		return hex.DecodeString(arg)
	case "file":
		path, sum, _ := strings.Cut(arg, ";sha256=")
		b, err := os.ReadFile(filepath.Join("testdata", path))
		if err != nil {
			return nil, err
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			return nil, fmt.Errorf("%s: sha256 %x, want %s", path, got, sum)
		}
		return b, nil
	case "gen":
		gen := map[string]func(i int) byte{
			"pat37":  func(i int) byte { return byte(i*37 + 11) },
			"mod256": func(i int) byte { return byte(i) },
			"zero":   func(int) byte { return 0 },
			"ff":     func(int) byte { return 0xff },
		}[arg]
		if gen == nil {
			return nil, fmt.Errorf("unknown generator %q", arg)
		}
		b := make([]byte, v.length)
		for i := range b {
			b[i] = gen(i)
		}
		return b, nil
	case "ext":
		return nil, fmt.Errorf("%w: %s", errSkip, arg)
	}
	return nil, fmt.Errorf("unknown input form %q", v.input)
}

func sum(chunks ...[]byte) string {
	h := quickxorhash.New()
	for _, c := range chunks {
		if _, err := h.Write(c); err != nil {
			panic(err) // hash.Hash.Write never fails
		}
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// split cuts b into pieces of the given size.
func split(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}

// TestVectors checks every row of both TSVs, whole-buffer and streamed in
// odd chunk sizes (around the 160-byte ring period).
func TestVectors(t *testing.T) {
	for file, rows := range map[string]int{"vectors.tsv": 76, "vectors_derived.tsv": 15} {
		vs := readVectors(t, file)
		if len(vs) != rows {
			t.Fatalf("%s: %d vectors, want %d", file, len(vs), rows)
		}
		for _, v := range vs {
			t.Run(file+"/"+v.name, func(t *testing.T) {
				in, err := materialise(v)
				if err != nil {
					if errors.Is(err, errSkip) {
						t.Skipf("skipped: %v (a 592,572-byte JPEG not copied into the repository because its rights are unclear)", err)
					}
					t.Fatal(err)
				}
				if len(in) != v.length {
					t.Fatalf("input is %d bytes, row says %d", len(in), v.length)
				}
				if got := sum(in); got != v.want {
					t.Errorf("whole buffer: %s, want %s", got, v.want)
				}
				for _, size := range []int{1, 7, 159, 161, 4099} {
					if len(in) > 200_000 && size < 159 {
						continue // byte-at-a-time over megabytes adds time, not coverage
					}
					if got := sum(split(in, size)...); got != v.want {
						t.Errorf("chunks of %d: %s, want %s", size, got, v.want)
					}
				}
			})
		}
	}
}

// TestSumKeepsState: Sum can be called mid-stream without affecting the
// final digest, and Reset starts over.
func TestSumKeepsState(t *testing.T) {
	in := bytes.Repeat([]byte("quickxorhash "), 50)
	want := sum(in)
	h := quickxorhash.New()
	for i, c := range split(in, 33) {
		first := h.Sum([]byte("prefix"))
		if !bytes.HasPrefix(first, []byte("prefix")) || len(first) != len("prefix")+quickxorhash.Size {
			t.Fatalf("Sum must append %d bytes to its argument", quickxorhash.Size)
		}
		if second := h.Sum([]byte("prefix")); !bytes.Equal(first, second) {
			t.Fatalf("chunk %d: two Sums differ", i)
		}
		if _, err := h.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("after interleaved Sums: %s, want %s", got, want)
	}
	h.Reset()
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" {
		t.Errorf("after Reset: %s, want the empty digest", got)
	}
	if h.Size() != 20 || h.BlockSize() != 64 {
		t.Errorf("Size %d BlockSize %d, want 20 and 64", h.Size(), h.BlockSize())
	}
}

func BenchmarkWrite(b *testing.B) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 37)
	}
	h := quickxorhash.New()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := h.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	h.Sum(nil)
}
