package jobstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
)

// ErrNoKEK is returned by OpenKey when a spec has a stored key but no key-encryption key was given.
var ErrNoKEK = errors.New("a key is stored but no key-encryption key is configured (" + keywrap.EnvKEK + ")")

// OpenKey returns the AES-256 key of a job spec, unwrapped with kek at now. It returns an error
// wrapping ErrNotFound when the spec has no key (an unencrypted job, or one whose key expired out
// of the bucket), and the keywrap errors (expired, another KEK, tampered) otherwise; none of the
// errors carries key material.
func (s *Store) OpenKey(ctx context.Context, specID string, kek *keywrap.KEK, now time.Time) ([]byte, error) {
	w, err := s.Key(ctx, specID)
	if err != nil {
		return nil, err
	}
	if kek == nil {
		return nil, fmt.Errorf("key of spec %s: %w", specID, ErrNoKEK)
	}
	return kek.Unwrap(specID, w, now)
}
