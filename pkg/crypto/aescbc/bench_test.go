package aescbc_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
)

// BenchmarkDecrypt streams a 25 MiB ciphertext (SharePoint's manifest split
// size) through the Reader, with the AES-NI path and the standard-library
// path side by side. The size can be overridden for scripts/bench_decrypt.sh.
func BenchmarkDecrypt(b *testing.B) {
	size := benchSize(b)
	key, iv := make([]byte, 32), make([]byte, 16)
	plain := make([]byte, size)
	for _, buf := range [][]byte{key, iv, plain} {
		if _, err := rand.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
	ct, err := aescbc.Encrypt(key, iv, plain)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range paths() {
		b.Run(p.name, func(b *testing.B) {
			out := make([]byte, 128<<10)
			b.SetBytes(int64(len(ct)))
			for b.Loop() {
				r, err := aescbc.NewReader(bytes.NewReader(ct), key, iv, p.opts...)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, onlyReader{r}, out)
				if err != nil || n != int64(len(plain)) {
					b.Fatalf("decrypted %d bytes, err %v", n, err)
				}
			}
		})
	}
}

// onlyReader hides io.WriterTo so io.CopyBuffer uses the given buffer.
type onlyReader struct{ io.Reader }
