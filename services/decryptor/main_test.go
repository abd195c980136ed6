package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// kek is a valid base64 KEK for the tests.
const kek = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func TestParseFlags(t *testing.T) {
	m := NewMain()
	m.Lookup = env(map[string]string{"AMR_CONCURRENCY": "6", "AMR_STORAGE_KEY": "secret-key", "AMR_STORAGE_ACCOUNT": "acct"})
	if err := m.ParseFlags([]string{"-manifest-container", "mine"}); err != nil {
		t.Fatal(err)
	}
	if m.Decryptor.Concurrency != 6 || m.Storage.Key != "secret-key" || m.Storage.Account != "acct" || m.Storage.Container != "mine" {
		t.Fatalf("parsed %+v / container %q account %q", m.Decryptor, m.Storage.Container, m.Storage.Account)
	}
}

func TestRun(t *testing.T) {
	srv, err := testenv.StartNATS(testenv.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}()
	account := map[string]string{"AMR_STORAGE_BLOB_URL": "http://127.0.0.1:1/devstoreaccount1", "AMR_STORAGE_ACCOUNT": "devstoreaccount1",
		"AMR_STORAGE_KEY": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range account {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		vars    map[string]string
		wantErr error
	}{
		{"no storage account", map[string]string{keywrap.EnvKEK: kek}, storage.ErrNotConfigured},
		{"no KEK", with(nil), keywrap.ErrNoKEK},
		{"starts and stops", with(map[string]string{keywrap.EnvKEK: kek}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMain()
			m.Lookup = env(tt.vars)
			if err := m.ParseFlags([]string{"-nats-url", srv.ClientURL(), "-http-addr", "127.0.0.1:0", "-log-level", "error"}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err := m.Run(ctx)
			if cerr := m.Close(); cerr != nil {
				t.Error(cerr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
