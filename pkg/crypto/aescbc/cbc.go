package aescbc

import (
	"crypto/aes"
	"crypto/cipher"
)

// blockDecrypter decrypts whole 16-byte blocks in place and carries the CBC
// chaining value from one call to the next.
type blockDecrypter interface {
	cryptBlocks(buf []byte)
}

// stdlibCBC is the portable path: crypto/cipher's CBC decrypter.
type stdlibCBC struct{ mode cipher.BlockMode }

func (c stdlibCBC) cryptBlocks(buf []byte) { c.mode.CryptBlocks(buf, buf) }

// newBlockDecrypter picks the AES-NI kernel when the CPU has it (and portable
// is false), else the standard library. key and iv must be 32 and 16 bytes.
func newBlockDecrypter(key, iv []byte, portable bool) (blockDecrypter, error) {
	if !portable {
		if fast := newFastCBC(key, iv); fast != nil {
			return fast, nil
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return stdlibCBC{mode: cipher.NewCBCDecrypter(block, iv)}, nil
}
