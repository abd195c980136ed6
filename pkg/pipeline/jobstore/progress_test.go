package jobstore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

func TestSeenDoesNotMark(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	s := open(t, env)
	const ev = "5d41402abc4b2a76b9719d911017c592"
	for range 2 { // checking twice must not mark
		if seen, err := s.Seen(ctx, job, ev); err != nil || seen {
			t.Fatalf("before MarkSeen: seen=%v err=%v", seen, err)
		}
	}
	if first, err := s.MarkSeen(ctx, job, ev); err != nil || !first {
		t.Fatalf("MarkSeen: first=%v err=%v", first, err)
	}
	if seen, err := open(t, env).Seen(ctx, job, ev); err != nil || !seen {
		t.Fatalf("after MarkSeen, another replica: seen=%v err=%v", seen, err)
	}
	if seen, err := s.Seen(ctx, "another-job", ev); err != nil || seen {
		t.Fatalf("same event id of another job: seen=%v err=%v", seen, err)
	}
}

func TestCursorAt(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	s := open(t, env)
	if c, at, err := s.CursorAt(ctx, job); err != nil || c != "" || !at.IsZero() {
		t.Fatalf("before any: %q %v %v", c, at, err)
	}
	before := time.Now().Add(-time.Second) // server clock, same machine
	if err := s.PutCursor(ctx, job, "17"); err != nil {
		t.Fatal(err)
	}
	c, at, err := s.CursorAt(ctx, job)
	if err != nil || c != "17" {
		t.Fatalf("cursor = %q, %v; want 17", c, err)
	}
	if at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("stored at %v, want about now", at)
	}
}

func TestOpenKey(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	s := open(t, env)
	kek, err := keywrap.New("test", bytes.Repeat([]byte{7}, keywrap.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	otherKEK, err := keywrap.New("other", bytes.Repeat([]byte{8}, keywrap.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{0x42}, keywrap.KeySize)
	w, err := kek.Wrap("spec-1", key, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutKey(ctx, "spec-1", w); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    string
		kek     *keywrap.KEK
		at      time.Time
		wantErr error
	}{
		{"opens", "spec-1", kek, t0, nil},
		{"no key stored", "spec-2", kek, t0, jobstore.ErrNotFound},
		{"no KEK configured", "spec-1", nil, t0, jobstore.ErrNoKEK},
		{"another KEK", "spec-1", otherKEK, t0, keywrap.ErrOtherKEK},
		{"expired", "spec-1", kek, t0.Add(2 * time.Hour), keywrap.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.OpenKey(ctx, tt.spec, tt.kek, tt.at)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(got, key) {
				t.Fatal("opened key differs from the stored one")
			}
			if err != nil && strings.Contains(err.Error(), string(key)) {
				t.Fatal("error carries the key")
			}
		})
	}
}
