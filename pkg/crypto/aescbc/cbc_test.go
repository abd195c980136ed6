package aescbc

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// TestBlockDecryptersMatchStdlib feeds 0…300 blocks, split over several calls
// (so the chaining value must carry over), to every implementation and
// compares with crypto/cipher on the whole buffer, in place.
func TestBlockDecryptersMatchStdlib(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{1}) // deterministic inputs
	for n := 0; n <= 300; n++ {
		buf := make([]byte, 32+blockSize+n*blockSize)
		if _, err := rng.Read(buf); err != nil {
			t.Fatal(err)
		}
		key, iv, src := buf[:32], buf[32:32+blockSize], buf[32+blockSize:]
		block, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, len(src))
		cipher.NewCBCDecrypter(block, iv).CryptBlocks(want, src)

		for _, portable := range []bool{false, true} {
			d, err := newBlockDecrypter(key, iv, portable)
			if err != nil {
				t.Fatal(err)
			}
			got := bytes.Clone(src)
			// Uneven split: 0..n%11 blocks first, then the rest in steps of 9 blocks.
			first := min(n%11, n) * blockSize
			d.cryptBlocks(got[:first])
			for off := first; off < len(got); off += 9 * blockSize {
				d.cryptBlocks(got[off:min(off+9*blockSize, len(got))])
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d blocks, portable=%v (%T): plaintext differs from crypto/cipher", n, portable, d)
			}
		}
	}
}

// TestKeySchedule checks the AES-NI key expansion on the FIPS-197 C.3 vector
// (AES-256), decrypting one block with a zero IV.
func TestKeySchedule(t *testing.T) {
	key := hexBytes(t, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	ct := hexBytes(t, "8ea2b7ca516745bfeafc49904b496089")
	want := hexBytes(t, "00112233445566778899aabbccddeeff")
	for _, portable := range []bool{false, true} {
		d, err := newBlockDecrypter(key, make([]byte, blockSize), portable)
		if err != nil {
			t.Fatal(err)
		}
		got := bytes.Clone(ct)
		d.cryptBlocks(got)
		if !bytes.Equal(got, want) {
			t.Errorf("portable=%v: got %x, want %x", portable, got, want)
		}
	}
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkBlockDecrypter measures the kernels alone on a cache-resident
// 128 KiB buffer (the Reader's default), like `openssl speed -evp
// aes-256-cbc -decrypt`; BenchmarkDecrypt adds the Reader's copies of 25 MiB.
func BenchmarkBlockDecrypter(b *testing.B) {
	for _, portable := range []bool{false, true} {
		d, err := newBlockDecrypter(make([]byte, 32), make([]byte, blockSize), portable)
		if err != nil {
			b.Fatal(err)
		}
		name := "aesni"
		if _, ok := d.(stdlibCBC); ok {
			name = "stdlib"
		}
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, defaultBufferSize)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				d.cryptBlocks(buf)
			}
		})
	}
}
