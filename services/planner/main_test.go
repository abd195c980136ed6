package main

import (
	"testing"
	"time"
)

func TestFlagsFallBackToTheEnvironment(t *testing.T) {
	env := map[string]string{"AMR_SMALL": "500", "AMR_NATS_URL": "nats://a:4222", "AMR_SP_TOKEN": "secret-token", "AMR_TOKEN_MAX_AGE": "720h"}
	m := &Main{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	if err := m.ParseFlags([]string{"-large", "5000", "-list-large-folders"}); err != nil {
		t.Fatal(err)
	}
	p := m.Planner.Planner
	if p.Small != 500 || p.Large != 5000 || !p.ListLargeFolders || p.TokenMaxAge != 720*time.Hour || p.MaxURLsPerJob != 5000 {
		t.Fatalf("planner config %+v", p)
	}
	if m.Service.NATSURL != "nats://a:4222" || m.Service.Name != "planner" || m.Planner.SP.Token != "secret-token" {
		t.Fatalf("service %+v, token %q", m.Service, m.Planner.SP.Token)
	}
	if err := (&Main{Lookup: func(string) (string, bool) { return "", false }}).ParseFlags([]string{"-small", "x"}); err == nil {
		t.Fatal("a bad -small was accepted")
	}
}
