// Package quickxorhash implements Microsoft's QuickXorHash, the 160-bit
// checksum OneDrive and SharePoint report for files (Graph
// file.hashes.quickXorHash, manifest File/@Checksum), as a hash.Hash.
//
// The algorithm: byte i of the input is XORed into a 160-bit ring at bit
// offset 11*i mod 160 (little-endian bit order, wrapping from bit 159 to
// bit 0); finally the input length, as a 64-bit little-endian integer, is
// XORed into the last 8 bytes of the 20-byte digest. Digests are usually
// exchanged in standard base64.
package quickxorhash

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
)

const (
	// Size is the digest length in bytes.
	Size = 20
	// BlockSize is the block size reported by hash.Hash (the algorithm has
	// none; 64 lets callers size their writes like other hashes).
	BlockSize = 64

	shift      = 11
	widthBits  = 8 * Size
	period     = widthBits // 11*i mod 160 repeats every 160 bytes (gcd(11,160) = 1)
	lengthSize = 8
)

// digest accumulates the input XORed by position modulo 160; the bit
// placement is applied once, in Sum, because every byte at the same
// position lands at the same ring offset.
type digest struct {
	acc [period]byte
	n   uint64
}

// New returns a new QuickXorHash.
func New() hash.Hash { return &digest{} }

func (d *digest) Size() int      { return Size }
func (d *digest) BlockSize() int { return BlockSize }
func (d *digest) Reset()         { *d = digest{} }

// Write never fails.
func (d *digest) Write(p []byte) (int, error) {
	n := len(p)
	pos := int(d.n % period)
	for len(p) > 0 {
		k := subtle.XORBytes(d.acc[pos:], d.acc[pos:], p)
		p = p[k:]
		pos = 0
	}
	d.n += uint64(n)
	return n, nil
}

// Sum appends the digest to b without changing the hash state.
func (d *digest) Sum(b []byte) []byte {
	var ring [Size + 1]byte // one spare byte catches the bits that wrap past bit 159
	for i, v := range d.acc {
		off := i * shift % widthBits
		w := uint16(v) << (off % 8)
		ring[off/8] ^= byte(w)
		ring[off/8+1] ^= byte(w >> 8)
	}
	ring[0] ^= ring[Size]
	var length [lengthSize]byte
	binary.LittleEndian.PutUint64(length[:], d.n)
	subtle.XORBytes(ring[Size-lengthSize:Size], ring[Size-lengthSize:Size], length[:])
	return append(b, ring[:Size]...)
}

// ReadBase64 hashes r to its end and returns the digest in standard base64, the form Microsoft
// Graph returns in file.hashes.quickXorHash and a Migration API package states for its archives.
func ReadBase64(r io.Reader) (string, int64, error) {
	h := New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, fmt.Errorf("quickxorhash: read: %w", err)
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), n, nil
}
