package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/testenv"
)

func TestParseFlags(t *testing.T) {
	m := NewMain()
	m.Lookup = func(k string) (string, bool) {
		v, ok := map[string]string{"AMR_BATCH_SIZE": "512", "AMR_CONCURRENCY": "3"}[k]
		return v, ok
	}
	if err := m.ParseFlags([]string{"-concurrency", "4", "-max-batch-bytes", "100000"}); err != nil {
		t.Fatal(err)
	}
	// The command line wins over the environment, which wins over the default.
	if m.Parser.BatchSize != 512 || m.Parser.Concurrency != 4 || m.Parser.MaxBatchBytes != 100000 || m.Service.Name != "parser" {
		t.Fatalf("parsed %+v, service %q", m.Parser, m.Service.Name)
	}
	if err := NewMain().ParseFlags([]string{"-batch-size", "many"}); err == nil {
		t.Error("a bad -batch-size was accepted")
	}
}

// TestRun starts the parser against an embedded server, checks it becomes ready, and stops it.
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
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for /readyz
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	m := NewMain()
	m.Lookup = func(string) (string, bool) { return "", false }
	if err := m.ParseFlags([]string{"-nats-url", srv.ClientURL(), "-http-addr", addr, "-log-level", "error", "-otel", "none"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	ready := false
	for deadline := time.Now().Add(10 * time.Second); !ready && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		ready = resp.StatusCode == http.StatusOK && strings.Contains(string(body), "ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
	if !ready {
		t.Fatal("the parser never became ready")
	}
}
