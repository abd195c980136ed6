// Package keywrap seals each job's AES-256 key under a key-encryption key (KEK) from
// configuration before it is stored in JetStream (envelope encryption): SharePoint keeps no copy
// of the key, so the wrapped key is the only one, and it must not be readable from the bucket.
//
// The wrap is AES-256-GCM. Its additional data binds the KEK id, the owner id and the expiry, so a
// wrapped key copied to another job, or with its expiry pushed back, does not open. The owner id
// is the id the key is stored under: the job spec id in amr_keys (docs/pipeline.md), because the
// key is stored before SharePoint hands out the job id.
package keywrap

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Environment variables of the KEK. The KEK is never a flag: flags show up in process listings.
const (
	// EnvKEK holds the KEK, 32 bytes in standard or URL-safe base64 (padded or not).
	EnvKEK = "AMR_KEK"
	// EnvKEKID optionally names the KEK (for rotation); the default is derived from the key.
	EnvKEKID = "AMR_KEK_ID"
)

// KeySize is the size of a KEK and of a job key: AES-256.
const KeySize = 32

// Errors of Unwrap and of KEK parsing. None of them carries key material.
var (
	ErrNoKEK    = errors.New("no key-encryption key configured (" + EnvKEK + ")")
	ErrKEKSize  = errors.New("key-encryption key must be 32 bytes")
	ErrKeySize  = errors.New("job key must be 32 bytes")
	ErrExpired  = errors.New("wrapped key expired")
	ErrOtherKEK = errors.New("wrapped under another key-encryption key")
	// ErrOpen means the wrapped key does not open: tampered, another owner's, or a different KEK
	// under the same id.
	ErrOpen = errors.New("wrapped key does not open")
)

// KEK is a key-encryption key. It prints as its id only.
type KEK struct {
	id   string
	aead cipher.AEAD
}

// New returns the KEK for a 32-byte key; an empty id is derived from the key (a one-way
// fingerprint, safe to log).
func New(id string, key []byte) (*KEK, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w, got %d", ErrKEKSize, len(key))
	}
	if id == "" {
		sum := sha256.Sum256(append([]byte("amrpipe kek id\x00"), key...))
		id = "kek-" + hex.EncodeToString(sum[:6])
	}
	if strings.ContainsRune(id, 0) {
		return nil, errors.New("key-encryption key id contains NUL")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return &KEK{id: id, aead: aead}, nil
}

// FromEnv reads the KEK from EnvKEK (and its id from EnvKEKID); lookup is os.LookupEnv in
// production.
func FromEnv(lookup func(string) (string, bool)) (*KEK, error) {
	v, ok := lookup(EnvKEK)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, ErrNoKEK
	}
	key, err := decodeBase64(strings.TrimSpace(v))
	if err != nil {
		return nil, fmt.Errorf("%s is not base64", EnvKEK) // the decoder's error quotes input bytes
	}
	id, _ := lookup(EnvKEKID)
	return New(strings.TrimSpace(id), key)
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// ID names the KEK.
func (k *KEK) ID() string { return k.id }

// String prints the id only.
func (k KEK) String() string { return "KEK(" + k.id + ")" }

// GoString prints the id only, also for %#v.
func (k KEK) GoString() string { return k.String() }

// Wrap seals a job's 32-byte key for its owner id, valid until now+ttl.
func (k *KEK) Wrap(id string, key []byte, ttl time.Duration, now time.Time) (*amrpipev1.WrappedKey, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("wrap key of %s: %w, got %d", id, ErrKeySize, len(key))
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("wrap key of %s: ttl %s must be positive", id, ttl)
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	expires := timestamppb.New(now.Add(ttl))
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("wrap key of %s: nonce: %w", id, err)
	}
	return &amrpipev1.WrappedKey{
		KekId:      k.id,
		Nonce:      nonce,
		Ciphertext: k.aead.Seal(nil, nonce, key, additionalData(k.id, id, expires)),
		Expires:    expires,
	}, nil
}

// Unwrap opens the wrapped key of owner id, refusing one that expired before now.
func (k *KEK) Unwrap(id string, w *amrpipev1.WrappedKey, now time.Time) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if w.GetKekId() != k.id {
		return nil, fmt.Errorf("unwrap key of %s: %w (%q, have %q)", id, ErrOtherKEK, w.GetKekId(), k.id)
	}
	if !w.GetExpires().IsValid() || !now.Before(w.GetExpires().AsTime()) {
		return nil, fmt.Errorf("unwrap key of %s: %w at %s", id, ErrExpired, w.GetExpires().AsTime().Format(time.RFC3339))
	}
	if len(w.GetNonce()) != k.aead.NonceSize() {
		return nil, fmt.Errorf("unwrap key of %s: %w: nonce of %d bytes", id, ErrOpen, len(w.GetNonce()))
	}
	key, err := k.aead.Open(nil, w.GetNonce(), w.GetCiphertext(), additionalData(k.id, id, w.GetExpires()))
	if err != nil {
		return nil, fmt.Errorf("unwrap key of %s: %w", id, ErrOpen)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("unwrap key of %s: %w", id, ErrKeySize)
	}
	return key, nil
}

func checkID(id string) error {
	if id == "" || strings.ContainsRune(id, 0) {
		return fmt.Errorf("wrapped key: bad owner id %q", id)
	}
	return nil
}

// additionalData is what the GCM tag binds besides the key: fields NUL-separated (ids hold no NUL).
func additionalData(kekID, id string, expires *timestamppb.Timestamp) []byte {
	return []byte("amrpipe.v1.WrappedKey\x00" + kekID + "\x00" + id + "\x00" +
		strconv.FormatInt(expires.GetSeconds(), 10) + "." + strconv.FormatInt(int64(expires.GetNanos()), 10))
}
