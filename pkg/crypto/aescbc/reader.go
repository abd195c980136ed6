// Package aescbc decrypts SharePoint's AES-256-CBC (PKCS#7) manifest blobs and
// queue messages as a stream, in constant memory, with an AES-NI kernel on
// amd64 and the standard library elsewhere.
//
// CBC has no integrity check and cannot prove a key wrong. Without an
// expectation a wrong key (or IV) shows up as ErrBadPadding at the very end of
// the stream, and about 1 time in 256 the garbage happens to end in valid
// padding and is not detected at all. With an expectation (WithExpect) it is
// reported as ErrWrongKey from the first block, before the rest of the blob
// is read (the first block must be text opening as expected: a wrong key passes
// that well under once in a million tries), and the padding check still runs
// at the end.
package aescbc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Sentinel errors; match them with errors.Is. Errors about the ciphertext come
// wrapped in *OffsetError, which says where in the stream the problem was found.
var (
	ErrKeySize    = errors.New("aescbc: key must be 32 bytes (AES-256)")
	ErrIVSize     = errors.New("aescbc: IV must be 16 bytes")
	ErrTruncated  = errors.New("aescbc: ciphertext is empty or not a multiple of 16 bytes")
	ErrBadPadding = errors.New("aescbc: invalid PKCS#7 padding (wrong key or IV, or corrupt data)")
	ErrWrongKey   = errors.New("aescbc: first block does not decrypt to the expected content (wrong key or IV)")
)

// OffsetError locates a ciphertext error: Offset is the ciphertext byte offset
// at which it was detected (the stream length for ErrTruncated, the start of
// the last block for ErrBadPadding, 0 for ErrWrongKey).
type OffsetError struct {
	Offset int64
	Err    error
}

func (e *OffsetError) Error() string {
	return fmt.Sprintf("%v (ciphertext offset %d)", e.Err, e.Offset)
}

// Unwrap returns the sentinel error.
func (e *OffsetError) Unwrap() error { return e.Err }

// Expect describes what the plaintext must start with; it lets the reader
// reject a wrong key after one block instead of after the whole stream.
type Expect int

const (
	// ExpectAnything performs no content check (a wrong key then surfaces as ErrBadPadding).
	ExpectAnything Expect = iota
	// ExpectXML: after an optional UTF-8 BOM and XML whitespace, the plaintext starts with '<'.
	ExpectXML
	// ExpectJSON: after an optional UTF-8 BOM and JSON whitespace, the plaintext starts with '{' or '['.
	ExpectJSON
)

const (
	blockSize         = 16
	defaultBufferSize = 128 << 10
	minBufferSize     = 4 << 10
	maxEmptyReads     = 100 // like bufio: give up on a source that never makes progress
)

type config struct {
	expect   Expect
	bufSize  int
	portable bool
}

// Option tunes NewReader.
type Option func(*config)

// WithExpect checks the first plaintext block against e (see Expect).
func WithExpect(e Expect) Option { return func(c *config) { c.expect = e } }

// WithBufferSize sets the size of the reader's one fixed buffer (default
// 128 KiB; rounded down to whole blocks, at least 4 KiB).
func WithBufferSize(n int) Option { return func(c *config) { c.bufSize = n } }

// withPortable forces the standard-library path (tests compare both paths).
func withPortable() Option { return func(c *config) { c.portable = true } }

// Reader decrypts an AES-256-CBC ciphertext stream with PKCS#7 padding. It
// holds back the last block until the source reports io.EOF, then verifies and
// strips the padding.
//
// Plaintext is handed out as it is decrypted, so a reader that fails at the
// end (ErrTruncated, ErrBadPadding, a source error) has already returned part
// of it; treat the output as valid only once Read has returned io.EOF.
type Reader struct {
	src    io.Reader
	cbc    blockDecrypter
	expect Expect
	buf    []byte
	// buf[rpos:dec] is plaintext not yet returned, buf[dec:filled] ciphertext
	// not yet decrypted; base is the stream offset of buf[0].
	rpos, dec, filled int
	base              int64
	checked           bool // the first block passed the expectation
	err               error
}

// NewReader returns a Reader that decrypts src with key (32 bytes) and iv (16 bytes).
func NewReader(src io.Reader, key, iv []byte, opts ...Option) (*Reader, error) {
	cfg := config{bufSize: defaultBufferSize}
	for _, o := range opts {
		o(&cfg)
	}
	if len(key) != 32 {
		return nil, ErrKeySize
	}
	if len(iv) != blockSize {
		return nil, ErrIVSize
	}
	cbc, err := newBlockDecrypter(key, iv, cfg.portable)
	if err != nil {
		return nil, fmt.Errorf("aescbc: %w", err)
	}
	size := max(cfg.bufSize, minBufferSize) &^ (blockSize - 1)
	return &Reader{
		src:     src,
		cbc:     cbc,
		expect:  cfg.expect,
		buf:     make([]byte, size),
		checked: cfg.expect == ExpectAnything,
	}, nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for {
		if r.rpos < r.dec {
			n := copy(p, r.buf[r.rpos:r.dec])
			r.rpos += n
			return n, nil
		}
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.fill()
	}
}

// fill reads ciphertext until at least one block can be decrypted or the
// source ends. It returns io.EOF once the final block has been decrypted.
func (r *Reader) fill() error {
	// Keep the undecrypted tail (the held-back block and any partial one).
	n := copy(r.buf, r.buf[r.dec:r.filled])
	r.base += int64(r.dec)
	r.rpos, r.dec, r.filled = 0, 0, n

	for empty := 0; ; {
		n, err := r.src.Read(r.buf[r.filled:])
		r.filled += n
		if errors.Is(err, io.EOF) {
			return r.finish()
		}
		if err != nil {
			return fmt.Errorf("aescbc: read ciphertext at offset %d: %w", r.base+int64(r.filled), err)
		}
		// Every whole block followed by at least one more byte is not the
		// last one and can be decrypted now.
		if r.filled > 0 {
			if k := (r.filled - 1) / blockSize * blockSize; k > 0 {
				r.cbc.cryptBlocks(r.buf[:k])
				if err := r.checkFirst(r.buf[:k], false); err != nil {
					return err
				}
				r.dec = k
				return nil
			}
		}
		if n == 0 {
			if empty++; empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		}
	}
}

// finish decrypts what is left at the end of the stream and strips the padding.
func (r *Reader) finish() error {
	total := r.base + int64(r.filled)
	if total == 0 || r.filled%blockSize != 0 {
		return &OffsetError{Offset: total, Err: ErrTruncated}
	}
	r.cbc.cryptBlocks(r.buf[:r.filled])
	pad, ok := paddingLen(r.buf[r.filled-blockSize : r.filled])
	plain := r.buf[:r.filled]
	if ok {
		plain = plain[:r.filled-pad]
	}
	// A padding failure is also what a wrong key looks like; when the
	// caller told us what to expect, the more useful answer wins.
	if err := r.checkFirst(plain, ok); err != nil {
		return err
	}
	if !ok {
		return &OffsetError{Offset: total - blockSize, Err: ErrBadPadding}
	}
	r.dec = len(plain)
	return io.EOF
}

// checkFirst applies the expectation to the first decrypted bytes. complete
// says plain is the whole plaintext (so running out of bytes is a mismatch).
func (r *Reader) checkFirst(plain []byte, complete bool) error {
	if r.checked {
		return nil
	}
	r.checked = true
	if !matches(r.expect, plain, complete) {
		return &OffsetError{Offset: 0, Err: ErrWrongKey}
	}
	return nil
}

// paddingLen validates PKCS#7 padding on the last block.
func paddingLen(last []byte) (int, bool) {
	pad := int(last[blockSize-1])
	if pad == 0 || pad > blockSize {
		return 0, false
	}
	for _, b := range last[blockSize-pad:] {
		if int(b) != pad {
			return 0, false
		}
	}
	return pad, true
}

// matches reports whether plain can be the start of the expected content: after an optional
// BOM and whitespace, the opening character, and the first textBytes bytes all text (valid UTF-8,
// no control character but whitespace). The opening character alone lets a wrong key through
// about once in 250 blobs; the text rule brings that under one in a million.
// Undecidable prefixes (only BOM or whitespace so far) match unless complete.
func matches(e Expect, plain []byte, complete bool) bool {
	if e == ExpectAnything {
		return true
	}
	const bom = "\xef\xbb\xbf"
	switch {
	case bytes.HasPrefix(plain, []byte(bom)):
		plain = plain[len(bom):]
	case len(plain) > 0 && strings.HasPrefix(bom, string(plain)):
		return !complete // a BOM cut short
	}
	if !isText(plain[:min(len(plain), textBytes)]) {
		return false
	}
	for _, c := range plain {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '<':
			return e == ExpectXML
		case '{', '[':
			return e == ExpectJSON
		default:
			return false
		}
	}
	return !complete
}

// textBytes is how much of the plaintext's start isText checks: one block.
const textBytes = blockSize

// isText reports whether b is text: valid UTF-8 (a rune cut at the end is allowed) without
// control characters other than tab, CR and LF.
func isText(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return !utf8.FullRune(b) // a rune cut at the end of b
		}
		if r < 0x20 && r != '\t' && r != '\r' && r != '\n' || r == 0x7f {
			return false
		}
		b = b[n:]
	}
	return true
}

// Decrypt decrypts a whole ciphertext held in memory (for example a queue
// message); see NewReader for the options and errors.
func Decrypt(key, iv, ciphertext []byte, opts ...Option) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(ciphertext), key, iv, append(opts, WithBufferSize(len(ciphertext)+blockSize))...)
	if err != nil {
		return nil, err
	}
	out := bytes.NewBuffer(make([]byte, 0, len(ciphertext)))
	if _, err := out.ReadFrom(r); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
