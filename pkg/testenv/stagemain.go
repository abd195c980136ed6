package testenv

// This file runs a stage's program as its binary does, for tests of what a deployed stage serves.

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// unreachableStorage is a storage account on an address nothing listens on: the stages that use one
// start without calling it, and a call made anyway fails on the loopback interface.
var unreachableStorage = storage.Config{BlobURL: "http://127.0.0.1:1/" + AzuriteAccount, QueueURL: "http://127.0.0.1:1/" + AzuriteAccount,
	Account: AzuriteAccount, Container: "amr-manifests"}

// StartStage runs the program of stage d (stage.Main, as the stage's binary runs it) on js, with
// the command line of StageArgs, the secrets of StageSecrets and a storage account it never
// reaches, until the test ends. It returns once the stage is ready (built, /readyz answers 200): for
// tests of what a deployed stage serves, its health endpoints and its metrics registry.
func StartStage(t testing.TB, js *JetStream, d stage.Def) *stage.Main {
	t.Helper()
	kek := make([]byte, 32)
	env := StageSecrets("test-token", AzuriteKey, kek, "test")
	m := stage.NewMain(d)
	m.Options = svc.Options{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, LogOutput: io.Discard}
	if err := m.ParseFlags(StageArgs(d, StageFlags{NATSURL: js.Server.ClientURL(), LogLevel: "error", Storage: unreachableStorage})); err != nil {
		t.Fatalf("%s: %v", d.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", d.Name, err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("%s: close: %v", d.Name, err)
		}
	})
	Eventually(t, 30*time.Second, d.Name+" ready", func() bool {
		rt := m.Runtime()
		return rt != nil && rt.Ready(context.Background()) == nil
	})
	return m
}
