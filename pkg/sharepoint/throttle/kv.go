package throttle

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KV is a Budget held in a JetStream key-value bucket (topology.BucketThrottle), so that a
// Retry-After seen by one replica pauses the host for every replica. The key is the host, the
// value the paused-until time (RFC 3339, readable by an operator with `nats kv get`); Pause only
// ever moves it later, by compare-and-set.
type KV struct {
	kv    jetstream.KeyValue
	clock Clock
}

// NewKV returns a budget over the bucket on the given clock (the zero Clock is the real one).
func NewKV(kv jetstream.KeyValue, c Clock) *KV {
	return &KV{kv: kv, clock: c}
}

// maxPauseAttempts bounds Pause's compare-and-set loop; each conflict means another replica
// moved the pause, so a few rounds settle it.
const maxPauseAttempts = 16

// Wait implements Budget. It re-reads the pause after each sleep, because another replica may
// have extended it meanwhile.
func (b *KV) Wait(ctx context.Context, host string) error {
	key := hostKey(host)
	for {
		until, _, err := b.get(ctx, key)
		if err != nil {
			return fmt.Errorf("throttling budget of %s: %w", host, err)
		}
		d := until.Sub(b.clock.now())
		if d <= 0 {
			return ctx.Err()
		}
		if err := b.clock.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// Pause implements Budget.
func (b *KV) Pause(ctx context.Context, host string, until time.Time) error {
	key := hostKey(host)
	value := []byte(until.UTC().Format(time.RFC3339Nano))
	for range maxPauseAttempts {
		cur, rev, err := b.get(ctx, key)
		if err != nil {
			return fmt.Errorf("pause %s: %w", host, err)
		}
		if !until.After(cur) {
			return nil
		}
		if rev == 0 {
			_, err = b.kv.Create(ctx, key, value)
		} else {
			_, err = b.kv.Update(ctx, key, value, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("pause %s: %w", host, err)
		}
	}
	return fmt.Errorf("pause %s: %d conflicting writes in a row", host, maxPauseAttempts)
}

// get returns the host's paused-until time and the entry's revision (zero time and revision
// when the host was never paused or the entry expired).
func (b *KV) get(ctx context.Context, key string) (time.Time, uint64, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, 0, nil
	}
	if err != nil {
		return time.Time{}, 0, err
	}
	until, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil { // unreadable: treat as no pause, and let the next Pause overwrite it
		return time.Time{}, e.Revision(), nil
	}
	return until, e.Revision(), nil
}

// hostKey makes a bucket key of a host. Plain DNS names are used as they are (lower case);
// anything with other characters (a port's colon, an IPv6 address) is base64url-encoded, since
// keys allow only letters, digits and "-/_=.".
func hostKey(host string) string {
	host = strings.ToLower(host)
	valid := host != "" && !strings.HasPrefix(host, ".") && !strings.HasSuffix(host, ".") &&
		strings.IndexFunc(host, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
		}) < 0
	if valid {
		return host
	}
	return "b64=" + base64.RawURLEncoding.EncodeToString([]byte(host))
}

// ParsePause reads one entry of the bucket: the host its key names and the time it is paused
// until. ok is false for an entry this package did not write (a key or value it cannot read).
func ParsePause(key string, value []byte) (host string, until time.Time, ok bool) {
	host = key
	if enc, found := strings.CutPrefix(key, "b64="); found {
		dec, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			return "", time.Time{}, false
		}
		host = string(dec)
	}
	until, err := time.Parse(time.RFC3339Nano, string(value))
	if err != nil {
		return "", time.Time{}, false
	}
	return host, until, true
}
