package quickxorhash_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/crypto/quickxorhash"
)

// reference is QuickXorHash computed bit by bit, straight from Microsoft's description (the
// "QuickXorHash" snippet of the OneDrive docs): bit b of input byte i is XORed into bit
// (11*i + b) mod 160 of the 160-bit ring, bits numbered little-endian within and across bytes;
// then the input length, 64-bit little-endian, is XORed into the last 8 bytes. It shares no code
// with the package, so the fuzz test compares two independent readings of the algorithm.
func reference(data []byte) []byte {
	var ring [quickxorhash.Size]byte
	for i, c := range data {
		for b := range 8 {
			if c>>b&1 == 0 {
				continue
			}
			bit := (11*i + b) % (8 * quickxorhash.Size)
			ring[bit/8] ^= 1 << (bit % 8)
		}
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(data)))
	for i := range n {
		ring[quickxorhash.Size-8+i] ^= n[i]
	}
	return ring[:]
}

// TestReferenceAgreesWithVectors checks the reference itself against published vectors, so the
// fuzz test below compares against something known good.
func TestReferenceAgreesWithVectors(t *testing.T) {
	for _, file := range []string{"vectors.tsv", "vectors_derived.tsv"} {
		for _, v := range readVectors(t, file) {
			in, err := materialise(v)
			if err != nil {
				continue // not shipped (ext:), logged by TestVectors
			}
			if got := base64.StdEncoding.EncodeToString(reference(in)); got != v.want {
				t.Errorf("%s: reference gives %s, want %s", v.name, got, v.want)
			}
		}
	}
}

// FuzzAgainstReference: any input, written in any two pieces, hashes as the bit-by-bit
// reference does.
func FuzzAgainstReference(f *testing.F) {
	f.Add([]byte{}, uint(0))
	f.Add([]byte("a"), uint(1))
	f.Add(bytes.Repeat([]byte{0xff}, 161), uint(80))
	f.Add(bytes.Repeat([]byte("quickxorhash"), 40), uint(159))
	f.Fuzz(func(t *testing.T, data []byte, cut uint) {
		cut %= uint(len(data) + 1)
		h := quickxorhash.New()
		if _, err := h.Write(data[:cut]); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Write(data[cut:]); err != nil {
			t.Fatal(err)
		}
		if got, want := h.Sum(nil), reference(data); !bytes.Equal(got, want) {
			t.Fatalf("len %d cut %d: got %x, reference %x", len(data), cut, got, want)
		}
	})
}

// TestReadBase64 hashes a stream as Graph prints it and counts its bytes.
func TestReadBase64(t *testing.T) {
	in := bytes.Repeat([]byte("quickxorhash "), 50)
	got, n, err := quickxorhash.ReadBase64(bytes.NewReader(in))
	if err != nil || n != int64(len(in)) || got != base64.StdEncoding.EncodeToString(reference(in)) {
		t.Fatalf("ReadBase64 = %s, %d, %v", got, n, err)
	}
}
