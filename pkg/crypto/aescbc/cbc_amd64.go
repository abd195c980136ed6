//go:build !purego

package aescbc

import "golang.org/x/sys/cpu"

// hasAESNI is read once at package initialisation; it is unexported so that
// nothing outside the package can switch implementations behind a running reader.
var hasAESNI = cpu.X86.HasAES

//go:noescape
func expandKeyAsm(key *[32]byte, dec *[15][16]byte)

//go:noescape
func decryptBlocksAsm(xk *[15][16]byte, iv *[16]byte, dst, src []byte)

// aesniCBC decrypts with the 8-way AES-NI kernel in cbc_amd64.s.
type aesniCBC struct {
	dec [15][16]byte // decryption round keys (equivalent inverse cipher)
	iv  [16]byte     // chaining value: the last ciphertext block seen
}

func (c *aesniCBC) cryptBlocks(buf []byte) {
	if len(buf) == 0 {
		return
	}
	decryptBlocksAsm(&c.dec, &c.iv, buf, buf)
}

// newFastCBC returns the AES-NI decrypter, or nil when the CPU lacks AES-NI.
func newFastCBC(key, iv []byte) blockDecrypter {
	if !hasAESNI {
		return nil
	}
	c := &aesniCBC{}
	expandKeyAsm((*[32]byte)(key), &c.dec)
	copy(c.iv[:], iv)
	return c
}
