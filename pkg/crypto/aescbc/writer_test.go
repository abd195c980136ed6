package aescbc_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
)

// TestWriterChunked: streaming writes in odd sizes give the same ciphertext
// as the reference encryption, and Write after Close fails.
func TestWriterChunked(t *testing.T) {
	key, iv := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	plain := bytes.Repeat([]byte("0123456789"), 101)
	want := stdlibEncrypt(t, key, iv, plain)
	for _, chunk := range []int{1, 5, 15, 16, 17, 100, len(plain)} {
		var out bytes.Buffer
		w, err := aescbc.NewWriter(&out, key, iv)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(plain); off += chunk {
			if n, err := w.Write(plain[off:min(off+chunk, len(plain))]); err != nil || n != min(chunk, len(plain)-off) {
				t.Fatalf("chunk %d: Write = %d, %v", chunk, n, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("chunk %d: ciphertext differs from reference", chunk)
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, aescbc.ErrClosed) {
			t.Errorf("Write after Close: %v", err)
		}
	}
}

func TestWriterKeyErrors(t *testing.T) {
	if _, err := aescbc.NewWriter(nil, make([]byte, 31), make([]byte, 16)); !errors.Is(err, aescbc.ErrKeySize) {
		t.Errorf("31-byte key: %v", err)
	}
	if _, err := aescbc.Encrypt(make([]byte, 32), make([]byte, 8), nil); !errors.Is(err, aescbc.ErrIVSize) {
		t.Errorf("8-byte IV: %v", err)
	}
}
