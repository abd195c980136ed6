package server

import (
	"strings"
	"testing"
	"time"
)

func TestSimulatorChecksSASLikeSharePoint(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const base = "https://acct.blob.core.windows.net/manifests?sv=2026-12-06&se=2026-12-08T00:00:00Z&sig=c2ln"
	tests := []struct {
		name, url, why string
		queue          bool
	}{
		{name: "read and write container", url: base + "&sr=c&sp=rw"},
		{name: "write and read in another order", url: base + "&sr=c&sp=wr"},
		{name: "list too", url: base + "&sr=c&sp=rwl", why: "only Read and Write"},
		{name: "read only", url: base + "&sr=c&sp=r", why: "only Read and Write"},
		{name: "a blob SAS", url: base + "&sr=b&sp=rw", why: "not for a container"},
		{name: "no signature", url: "https://acct.blob.core.windows.net/m?sr=c&sp=rw&se=2026-12-08T00:00:00Z", why: "no signature"},
		{name: "expired", url: "https://acct.blob.core.windows.net/m?sr=c&sp=rw&se=2026-11-30T00:00:00Z&sig=x", why: "expired"},
		{name: "no expiry", url: "https://acct.blob.core.windows.net/m?sr=c&sp=rw&sig=x", why: "no readable expiry"},
		{name: "relative", url: "/manifests?sig=x", why: "not an absolute"},
		{name: "queue with add", url: "https://acct.queue.core.windows.net/q?sp=a&se=2026-12-08&sig=x", queue: true},
		{name: "queue with add and more", url: "https://acct.queue.core.windows.net/q?sp=raup&se=2026-12-08&sig=x", queue: true},
		{name: "queue without add", url: "https://acct.queue.core.windows.net/q?sp=r&se=2026-12-08&sig=x", queue: true, why: "Add is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := checkContainerSAS
			if tt.queue {
				check = checkQueueSAS
			}
			err := check(tt.url, now)
			if tt.why == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("err = %v, want it to say %q", err, tt.why)
			}
			if strings.Contains(redact(tt.url), "c2ln") {
				t.Fatal("redact kept the signature")
			}
		})
	}
}
