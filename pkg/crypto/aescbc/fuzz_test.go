package aescbc_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
)

// referenceDecrypt is the obvious whole-buffer decryption with crypto/cipher.
func referenceDecrypt(key, iv, ct []byte) ([]byte, error) {
	if len(ct) == 0 || len(ct)%16 != 0 {
		return nil, aescbc.ErrTruncated
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ct)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > 16 || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, aescbc.ErrBadPadding
	}
	return out[:len(out)-pad], nil
}

// FuzzDecrypt compares the Reader (both paths, read in chunks of a fuzzed
// size) with crypto/cipher on arbitrary ciphertext, and checks that any data
// encrypted with the reference decrypts back to itself.
func FuzzDecrypt(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16), []byte("<SPObjects/>"), uint8(0))
	f.Add(make([]byte, 32), make([]byte, 16), make([]byte, 16*9), uint8(1))
	f.Add(make([]byte, 32), make([]byte, 16), []byte("not a multiple of sixteen"), uint8(7))
	f.Fuzz(func(t *testing.T, key, iv, data []byte, chunk uint8) {
		if len(key) != 32 || len(iv) != 16 {
			if _, err := aescbc.NewReader(bytes.NewReader(data), key, iv); err == nil {
				t.Fatalf("key %d / iv %d bytes accepted", len(key), len(iv))
			}
			return
		}
		wrap := func(r io.Reader) io.Reader { return r }
		switch chunk % 3 {
		case 1:
			wrap = iotest.OneByteReader
		case 2:
			wrap = func(r io.Reader) io.Reader { return &chunkReader{r: r, n: int(chunk) + 1} }
		}
		want, wantErr := referenceDecrypt(key, iv, data)
		roundTrip := stdlibEncrypt(t, key, iv, data)
		for _, p := range paths() {
			got, err := decryptAll(wrap(bytes.NewReader(data)), key, iv, p.opts...)
			if !errors.Is(err, wantErr) || (err == nil && !bytes.Equal(got, want)) {
				t.Fatalf("%s: got %d bytes, err %v; reference %d bytes, err %v", p.name, len(got), err, len(want), wantErr)
			}
			back, err := decryptAll(wrap(bytes.NewReader(roundTrip)), key, iv, p.opts...)
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("%s: round trip of %d bytes: %d bytes, err %v", p.name, len(data), len(back), err)
			}
		}
	})
}
