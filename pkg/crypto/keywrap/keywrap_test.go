package keywrap_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

var (
	kekBytes = bytes.Repeat([]byte{0x4b}, 32)
	jobKey   = []byte("0123456789abcdef0123456789abcdef")
	now      = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
)

const job = "0b6c1f0e-8d35-4c0a-9f8a-6f1a5d2e7c11"

func mustKEK(t *testing.T, id string, key []byte) *keywrap.KEK {
	t.Helper()
	k, err := keywrap.New(id, key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// secretForms are the spellings of the KEK and job key that must never appear in text.
func secretForms() []string {
	var out []string
	for _, b := range [][]byte{kekBytes, jobKey} {
		out = append(out, string(b), hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), fmt.Sprint(b))
	}
	return out
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, f := range secretForms() {
		if strings.Contains(s, f) {
			t.Fatalf("%s contains key material: %q", what, s)
		}
	}
}

func TestWrapUnwrap(t *testing.T) {
	kek := mustKEK(t, "kek-2026", kekBytes)
	w, err := kek.Wrap(job, jobKey, 7*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	// The wrapped key travels through JetStream as protobuf.
	data, err := proto.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, jobKey) {
		t.Fatal("wrapped key contains the plain key")
	}
	stored := &amrpipev1.WrappedKey{}
	if err := proto.Unmarshal(data, stored); err != nil {
		t.Fatal(err)
	}
	got, err := kek.Unwrap(job, stored, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, jobKey) {
		t.Fatal("unwrapped key differs")
	}
	if w2, _ := kek.Wrap(job, jobKey, time.Hour, now); bytes.Equal(w2.GetNonce(), w.GetNonce()) {
		t.Fatal("two wraps share a nonce")
	}
}

func TestUnwrapRefuses(t *testing.T) {
	kek := mustKEK(t, "kek-2026", kekBytes)
	fresh := func(t *testing.T) *amrpipev1.WrappedKey {
		w, err := kek.Wrap(job, jobKey, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	tests := []struct {
		name   string
		kek    *keywrap.KEK
		job    string
		at     time.Time
		tamper func(*amrpipev1.WrappedKey)
		want   error
	}{
		{name: "flipped ciphertext bit", tamper: func(w *amrpipev1.WrappedKey) { w.Ciphertext[3] ^= 1 }, want: keywrap.ErrOpen},
		{name: "flipped nonce bit", tamper: func(w *amrpipev1.WrappedKey) { w.Nonce[0] ^= 1 }, want: keywrap.ErrOpen},
		{name: "short nonce", tamper: func(w *amrpipev1.WrappedKey) { w.Nonce = w.Nonce[:4] }, want: keywrap.ErrOpen},
		{name: "expiry pushed back", tamper: func(w *amrpipev1.WrappedKey) {
			w.Expires = timestamppb.New(w.GetExpires().AsTime().Add(24 * time.Hour))
		}, want: keywrap.ErrOpen},
		{name: "another job", job: "11111111-2222-3333-4444-555555555555", want: keywrap.ErrOpen},
		{name: "expired", at: now.Add(time.Hour), want: keywrap.ErrExpired},
		{name: "no expiry", tamper: func(w *amrpipev1.WrappedKey) { w.Expires = nil }, want: keywrap.ErrExpired},
		{name: "same id, other key", kek: mustKEK(t, "kek-2026", bytes.Repeat([]byte{1}, 32)), want: keywrap.ErrOpen},
		{name: "other KEK id", kek: mustKEK(t, "kek-2027", kekBytes), want: keywrap.ErrOtherKEK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := fresh(t)
			if tt.tamper != nil {
				tt.tamper(w)
			}
			k, j, at := kek, job, now.Add(time.Minute)
			if tt.kek != nil {
				k = tt.kek
			}
			if tt.job != "" {
				j = tt.job
			}
			if !tt.at.IsZero() {
				at = tt.at
			}
			key, err := k.Unwrap(j, w, at)
			if !errors.Is(err, tt.want) || key != nil {
				t.Fatalf("Unwrap = %x, %v; want %v", key, err, tt.want)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
}

func TestWrapRefuses(t *testing.T) {
	kek := mustKEK(t, "", kekBytes)
	if _, err := kek.Wrap(job, jobKey[:16], time.Hour, now); !errors.Is(err, keywrap.ErrKeySize) {
		t.Errorf("16-byte key: %v", err)
	}
	if _, err := kek.Wrap(job, jobKey, 0, now); err == nil {
		t.Error("zero ttl accepted")
	}
	if _, err := kek.Wrap("", jobKey, time.Hour, now); err == nil {
		t.Error("empty job id accepted")
	}
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		wantID string
		want   error
	}{
		{name: "missing", env: map[string]string{}, want: keywrap.ErrNoKEK},
		{name: "std base64 with id", env: map[string]string{"AMR_KEK": base64.StdEncoding.EncodeToString(kekBytes), "AMR_KEK_ID": "prod-1"}, wantID: "prod-1"},
		{name: "raw url base64, derived id", env: map[string]string{"AMR_KEK": base64.RawURLEncoding.EncodeToString(kekBytes)}, wantID: mustKEK(t, "", kekBytes).ID()},
		{name: "16 bytes", env: map[string]string{"AMR_KEK": base64.StdEncoding.EncodeToString(kekBytes[:16])}, want: keywrap.ErrKEKSize},
		{name: "not base64", env: map[string]string{"AMR_KEK": "K" + string(kekBytes) + "!"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := keywrap.FromEnv(func(n string) (string, bool) { v, ok := tt.env[n]; return v, ok })
			if tt.wantID == "" {
				if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				assertNoSecret(t, "error", err.Error())
				return
			}
			if err != nil || k.ID() != tt.wantID {
				t.Fatalf("FromEnv = %v, %v; want id %s", k, err, tt.wantID)
			}
		})
	}
}

func TestKEKPrintsNoKey(t *testing.T) {
	k := mustKEK(t, "", kekBytes)
	if !strings.HasPrefix(k.ID(), "kek-") {
		t.Fatalf("derived id %q", k.ID())
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		assertNoSecret(t, verb, fmt.Sprintf(verb, k))
		assertNoSecret(t, verb+" of the value", fmt.Sprintf(verb, *k))
	}
}
