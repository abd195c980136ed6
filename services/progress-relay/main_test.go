package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestParseFlags(t *testing.T) {
	m := NewMain()
	m.Lookup = env(map[string]string{
		"AMR_POLL_INTERVAL": "200ms",
		"AMR_REPORT_QUEUE":  "events",
		"AMR_SP_TOKEN":      "secret-token",
		"AMR_STORAGE_KEY":   "secret-key",
		"AMR_CONCURRENCY":   "3",
	})
	if err := m.ParseFlags([]string{"-concurrency", "7", "-nats-url", "nats://10.0.0.1:4222"}); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Relay.PollInterval != 200*time.Millisecond:
		t.Errorf("poll interval %s, want 200ms from AMR_POLL_INTERVAL", m.Relay.PollInterval)
	case m.Relay.Concurrency != 7:
		t.Errorf("concurrency %d, want the flag's 7 over the environment's 3", m.Relay.Concurrency)
	case m.Storage.Queue != "events" || m.Service.NATSURL != "nats://10.0.0.1:4222":
		t.Errorf("queue %q, nats %q", m.Storage.Queue, m.Service.NATSURL)
	case m.SharePoint.Token != "secret-token" || m.Storage.Key != "secret-key":
		t.Error("secrets not read from the environment")
	case m.Relay.StatusFallback != time.Hour || m.Relay.MaxPages != 50:
		t.Errorf("defaults: status fallback %s, max pages %d", m.Relay.StatusFallback, m.Relay.MaxPages)
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
	tests := []struct {
		name    string
		vars    map[string]string
		wantErr error
	}{
		{"no SharePoint credentials", map[string]string{}, spo.ErrNoCredentials},
		{"starts and stops", map[string]string{"AMR_SP_TOKEN": "t"}, nil},
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
