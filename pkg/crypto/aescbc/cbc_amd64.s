//go:build !purego

#include "textflag.h"

// AES-256 key schedule and 8-way interleaved CBC decryption with AES-NI.
//
// CBC decryption has no dependency between blocks (P[i] = D(C[i]) xor C[i-1]),
// so eight independent AESDEC chains keep the AES unit busy while each one
// waits out the instruction latency. Go's cipher.NewCBCDecrypter decrypts one
// block at a time and is latency bound.

// KEYMIX sets a = [a0, a0^a1, a0^a1^a2, a0^a1^a2^a3] (prefix xor of the
// previous round key's words), using X4 as scratch.
#define KEYMIX(a) \
	MOVO   a, X4; \
	PSLLO  $4, X4; \
	PXOR   X4, a; \
	PSLLO  $4, X4; \
	PXOR   X4, a; \
	PSLLO  $4, X4; \
	PXOR   X4, a

// EVEN derives round key 2i from keys 2i-2 (X1) and 2i-1 (X3):
// RotWord(SubWord(w)) xor rcon of the last word of X3.
#define EVEN(rcon, off) \
	AESKEYGENASSIST $rcon, X3, X2; \
	PSHUFD          $0xff, X2, X2; \
	KEYMIX(X1); \
	PXOR            X2, X1; \
	MOVOU           X1, off(DI)

// ODD derives round key 2i+1 from keys 2i-1 (X3) and 2i (X1):
// SubWord (no rotation, no rcon) of the last word of X1.
#define ODD(off) \
	AESKEYGENASSIST $0x00, X1, X2; \
	PSHUFD          $0xaa, X2, X2; \
	KEYMIX(X3); \
	PXOR            X2, X3; \
	MOVOU           X3, off(DI)

// func expandKeyAsm(key *[32]byte, dec *[15][16]byte)
//
// Writes the decryption schedule of the "equivalent inverse cipher"
// (FIPS-197 5.3.5): the encryption round keys in reverse order, with
// InvMixColumns (AESIMC) applied to all but the first and the last.
TEXT ·expandKeyAsm(SB), NOSPLIT, $0-16
	MOVQ  key+0(FP), AX
	MOVQ  dec+8(FP), DI
	MOVOU 0(AX), X1
	MOVOU 16(AX), X3
	MOVOU X1, 0(DI)
	MOVOU X3, 16(DI)
	EVEN(0x01, 32)
	ODD(48)
	EVEN(0x02, 64)
	ODD(80)
	EVEN(0x04, 96)
	ODD(112)
	EVEN(0x08, 128)
	ODD(144)
	EVEN(0x10, 160)
	ODD(176)
	EVEN(0x20, 192)
	ODD(208)
	EVEN(0x40, 224)

	// Reverse in place: swap keys i and 14-i, AESIMC on the inner ones.
	LEAQ  224(DI), SI
	MOVOU (DI), X0
	MOVOU (SI), X1
	MOVOU X1, (DI)
	MOVOU X0, (SI)
	ADDQ  $16, DI
	SUBQ  $16, SI

reverse:
	CMPQ   DI, SI
	JAE    middle
	MOVOU  (DI), X0
	MOVOU  (SI), X1
	AESIMC X0, X0
	AESIMC X1, X1
	MOVOU  X1, (DI)
	MOVOU  X0, (SI)
	ADDQ   $16, DI
	SUBQ   $16, SI
	JMP    reverse

middle:
	MOVOU  (DI), X0
	AESIMC X0, X0
	MOVOU  X0, (DI)
	RET

// ROUND8 applies one AESDEC round (key at off(AX)) to the eight states.
#define ROUND8(off) \
	MOVOU  off(AX), X8; \
	AESDEC X8, X0; \
	AESDEC X8, X1; \
	AESDEC X8, X2; \
	AESDEC X8, X3; \
	AESDEC X8, X4; \
	AESDEC X8, X5; \
	AESDEC X8, X6; \
	AESDEC X8, X7

// CHAIN xors state x with the ciphertext block at srcoff(SI) and stores it
// at dstoff(DI). Called from the last block to the first, so that in-place
// decryption reads each ciphertext block before it is overwritten.
#define CHAIN(x, srcoff, dstoff) \
	MOVOU srcoff(SI), X11; \
	PXOR  X11, x; \
	MOVOU x, dstoff(DI)

// func decryptBlocksAsm(xk *[15][16]byte, iv *[16]byte, dst, src []byte)
//
// Decrypts len(src)/16 whole blocks from src into dst and leaves the last
// ciphertext block in *iv for the next call. dst may be src (in place) but
// must not overlap it otherwise. The caller guarantees len(src)%16 == 0 and
// len(dst) >= len(src).
TEXT ·decryptBlocksAsm(SB), NOSPLIT, $0-64
	MOVQ  xk+0(FP), AX
	MOVQ  iv+8(FP), BX
	MOVQ  dst_base+16(FP), DI
	MOVQ  src_base+40(FP), SI
	MOVQ  src_len+48(FP), CX
	SHRQ  $4, CX
	MOVOU (BX), X9 // chaining value: the previous ciphertext block

loop8:
	CMPQ  CX, $8
	JB    loop1
	MOVOU 0(SI), X0
	MOVOU 16(SI), X1
	MOVOU 32(SI), X2
	MOVOU 48(SI), X3
	MOVOU 64(SI), X4
	MOVOU 80(SI), X5
	MOVOU 96(SI), X6
	MOVOU 112(SI), X7
	MOVO  X7, X10 // next chaining value, saved before dst overwrites it

	MOVOU 0(AX), X8
	PXOR  X8, X0
	PXOR  X8, X1
	PXOR  X8, X2
	PXOR  X8, X3
	PXOR  X8, X4
	PXOR  X8, X5
	PXOR  X8, X6
	PXOR  X8, X7
	ROUND8(16)
	ROUND8(32)
	ROUND8(48)
	ROUND8(64)
	ROUND8(80)
	ROUND8(96)
	ROUND8(112)
	ROUND8(128)
	ROUND8(144)
	ROUND8(160)
	ROUND8(176)
	ROUND8(192)
	ROUND8(208)
	MOVOU      224(AX), X8
	AESDECLAST X8, X0
	AESDECLAST X8, X1
	AESDECLAST X8, X2
	AESDECLAST X8, X3
	AESDECLAST X8, X4
	AESDECLAST X8, X5
	AESDECLAST X8, X6
	AESDECLAST X8, X7

	CHAIN(X7, 96, 112)
	CHAIN(X6, 80, 96)
	CHAIN(X5, 64, 80)
	CHAIN(X4, 48, 64)
	CHAIN(X3, 32, 48)
	CHAIN(X2, 16, 32)
	CHAIN(X1, 0, 16)
	PXOR  X9, X0
	MOVOU X0, 0(DI)
	MOVO  X10, X9

	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $8, CX
	JMP  loop8

loop1:
	// Fewer than eight blocks left: one at a time (at most seven).
	TESTQ CX, CX
	JZ    done
	MOVOU (SI), X0
	MOVO  X0, X10
	MOVOU 0(AX), X8
	PXOR  X8, X0
	MOVQ  $16, DX

round1:
	MOVOU  (AX)(DX*1), X8
	AESDEC X8, X0
	ADDQ   $16, DX
	CMPQ   DX, $224
	JB     round1
	MOVOU      224(AX), X8
	AESDECLAST X8, X0
	PXOR       X9, X0
	MOVOU      X0, (DI)
	MOVO       X10, X9
	ADDQ       $16, SI
	ADDQ       $16, DI
	DECQ       CX
	JMP        loop1

done:
	MOVOU X9, (BX)
	RET
