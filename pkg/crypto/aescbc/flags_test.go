package aescbc_test

import (
	"encoding/hex"
	"flag"
	"io"
	"os"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
)

// Flags for scripts/bench_decrypt.sh, which benchmarks the same file openssl decrypts.
var (
	benchBytes = flag.Int("aescbc.benchbytes", 25<<20, "plaintext size for BenchmarkDecrypt")
	benchFile  = flag.String("aescbc.file", "", "ciphertext file for BenchmarkDecryptFile")
	benchKey   = flag.String("aescbc.key", "", "hex key for -aescbc.file")
	benchIV    = flag.String("aescbc.iv", "", "hex IV for -aescbc.file")
)

func benchSize(b *testing.B) int { b.Helper(); return *benchBytes }

// BenchmarkDecryptFile streams -aescbc.file from disk to io.Discard through
// the Reader (so the process's peak RSS is the reader's, not the data's).
// It is skipped unless the script passes a file.
func BenchmarkDecryptFile(b *testing.B) {
	if *benchFile == "" {
		b.Skip("no -aescbc.file given")
	}
	key, err := hex.DecodeString(*benchKey)
	if err != nil {
		b.Fatal(err)
	}
	iv, err := hex.DecodeString(*benchIV)
	if err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(*benchFile)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, 128<<10)
	for _, p := range paths() {
		b.Run(p.name, func(b *testing.B) {
			b.SetBytes(st.Size())
			for b.Loop() {
				f, err := os.Open(*benchFile)
				if err != nil {
					b.Fatal(err)
				}
				r, err := aescbc.NewReader(f, key, iv, p.opts...)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, onlyReader{r}, out); err != nil {
					b.Fatal(err)
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
