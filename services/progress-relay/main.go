// Command progress-relay follows every live AMR job through GetMigrationJobProgress (and the
// report queue, when one is configured) and publishes each distinct migration event once on
// amr.events.<jobID>.<Event>. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage/relay"
)

func main() {
	os.Exit(svc.Execute("progress-relay", NewMain(), os.Args[1:], os.Stderr))
}

// Main is the progress-relay program: its configuration and its runtime.
type Main struct {
	Service    svc.Config
	SharePoint spo.Config
	Storage    storage.Config
	Relay      relay.Config
	// Lookup reads the environment (secrets and flag fallbacks).
	Lookup func(string) (string, bool)

	rt *svc.Runtime
}

// NewMain returns a Main reading the process environment.
func NewMain() *Main {
	return &Main{Service: svc.Config{Name: relay.Stage}, Lookup: os.LookupEnv}
}

// ParseFlags reads the flags, each with an AMR_* environment fallback, and the secrets, which are
// environment only.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet(relay.Stage, flag.ContinueOnError)
	m.Service.RegisterFlags(fs)
	m.SharePoint.RegisterFlags(fs)
	m.Storage.RegisterFlags(fs)
	m.Relay.RegisterFlags(fs)
	flagenv.Usage(fs, "AMR")
	if err := flagenv.Parse(fs, "AMR", args, m.Lookup); err != nil {
		return err
	}
	m.SharePoint.LoadSecrets(m.Lookup)
	m.Storage.LoadKey(m.Lookup)
	return nil
}

// Run connects, ensures the topology and relays until ctx ends.
func (m *Main) Run(ctx context.Context) error {
	sp, err := m.SharePoint.NewClient(nil)
	if err != nil {
		return err
	}
	deps := relay.Deps{SharePoint: sp}
	if m.Storage.Queue != "" {
		if deps.Storage, err = storage.Open(m.Storage); err != nil {
			return err
		}
		if deps.KEK, err = keywrap.FromEnv(m.Lookup); err != nil {
			return fmt.Errorf("-report-queue needs the key-encryption key: %w", err)
		}
	}
	// main handles the signals: ctx ends on SIGTERM/SIGINT.
	if m.rt, err = svc.New(ctx, m.Service, svc.Options{Lookup: m.Lookup, Signals: []os.Signal{}}); err != nil {
		return err
	}
	if err := m.rt.EnsureTopology(ctx); err != nil {
		return err
	}
	s, err := relay.New(m.rt, m.Relay, deps)
	if err != nil {
		return err
	}
	m.rt.Go(relay.Stage, s.Run)
	return m.rt.Run(ctx)
}

// Close drains the NATS connection and stops the HTTP server.
func (m *Main) Close() error {
	if m.rt == nil {
		return nil
	}
	return m.rt.Close()
}
