package aescbc

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// Writer encrypts with AES-256-CBC and PKCS#7 padding, as SharePoint does. It
// exists to produce test data and simulator output; it uses the standard
// library (CBC encryption is sequential and cannot be interleaved).
type Writer struct {
	dst     io.Writer
	mode    cipher.BlockMode
	partial []byte // less than one block of plaintext waiting for more
	closed  bool
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("aescbc: write after close")

// NewWriter returns a Writer that encrypts into dst with key (32 bytes) and iv (16 bytes).
func NewWriter(dst io.Writer, key, iv []byte) (*Writer, error) {
	if len(key) != 32 {
		return nil, ErrKeySize
	}
	if len(iv) != blockSize {
		return nil, ErrIVSize
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aescbc: %w", err)
	}
	return &Writer{dst: dst, mode: cipher.NewCBCEncrypter(block, iv), partial: make([]byte, 0, blockSize)}, nil
}

// Write encrypts the whole blocks of p (plus any bytes held from before).
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	total := len(p)
	if len(w.partial) > 0 {
		n := copy(w.partial[len(w.partial):blockSize], p)
		w.partial, p = w.partial[:len(w.partial)+n], p[n:]
		if len(w.partial) < blockSize {
			return total, nil
		}
		if err := w.emit(w.partial); err != nil {
			return 0, err
		}
		w.partial = w.partial[:0]
	}
	whole := len(p) &^ (blockSize - 1)
	if whole > 0 {
		if err := w.emit(p[:whole]); err != nil {
			return 0, err
		}
	}
	w.partial = append(w.partial, p[whole:]...)
	return total, nil
}

// emit encrypts whole blocks into a scratch copy (p belongs to the caller) and writes them.
func (w *Writer) emit(p []byte) error {
	out := make([]byte, len(p))
	w.mode.CryptBlocks(out, p)
	if _, err := w.dst.Write(out); err != nil {
		return fmt.Errorf("aescbc: write ciphertext: %w", err)
	}
	return nil
}

// Close writes the final padded block. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	pad := blockSize - len(w.partial)
	return w.emit(append(w.partial, bytes.Repeat([]byte{byte(pad)}, pad)...))
}

// Encrypt returns the AES-256-CBC/PKCS#7 encryption of plaintext.
func Encrypt(key, iv, plaintext []byte) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(plaintext) + blockSize)
	w, err := NewWriter(&out, key, iv)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
