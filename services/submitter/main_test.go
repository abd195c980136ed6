package main

import (
	"errors"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
)

func TestFlagsAndSecretsFromTheEnvironment(t *testing.T) {
	const kek = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes, base64
	tests := []struct {
		name          string
		env           map[string]string
		args          []string
		wantErr       error
		wantPlaintext bool
	}{
		{name: "encrypted by default", env: map[string]string{"AMR_KEK": kek, "AMR_STORAGE_KEY": "k", "AMR_REPORT_QUEUE": "amr-events"}},
		{name: "encryption needs a KEK", env: map[string]string{}, wantErr: keywrap.ErrNoKEK},
		{name: "plaintext needs none", env: map[string]string{}, args: []string{"-encrypt=false"}, wantPlaintext: true},
		{name: "plaintext from the environment", env: map[string]string{"AMR_ENCRYPT": "false"}, wantPlaintext: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Main{Lookup: func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }}
			err := m.ParseFlags(append([]string{"-key-ttl", "48h"}, tt.args...))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseFlags = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := m.Submitter
			if c.Plaintext != tt.wantPlaintext || (m.KEK == nil) != tt.wantPlaintext || c.KeyTTL != 48*time.Hour {
				t.Fatalf("plaintext %t, KEK %v, key TTL %s", c.Plaintext, m.KEK, c.KeyTTL)
			}
			if c.Storage.Key != tt.env["AMR_STORAGE_KEY"] || c.Storage.Queue != tt.env["AMR_REPORT_QUEUE"] || c.Storage.Container != "amr-manifests" {
				t.Fatalf("storage queue %q container %q, key set %t", c.Storage.Queue, c.Storage.Container, c.Storage.Key != "")
			}
		})
	}
}
