// Command decryptor decrypts each package file SharePoint announces (FinishManifestFileUpload)
// from the manifest container into the amr_manifests object store and tells the parser with
// ManifestReady on amr.manifests.<jobID>. See README.md.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage/decryptor"
)

func main() {
	os.Exit(svc.Execute("decryptor", NewMain(), os.Args[1:], os.Stderr))
}

// Main is the decryptor program: its configuration and its runtime.
type Main struct {
	Service   svc.Config
	Storage   storage.Config
	Decryptor decryptor.Config
	// Lookup reads the environment (secrets and flag fallbacks).
	Lookup func(string) (string, bool)

	rt *svc.Runtime
}

// NewMain returns a Main reading the process environment.
func NewMain() *Main {
	return &Main{Service: svc.Config{Name: decryptor.Stage}, Lookup: os.LookupEnv}
}

// ParseFlags reads the flags, each with an AMR_* environment fallback, and the storage key, which
// is environment only.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet(decryptor.Stage, flag.ContinueOnError)
	m.Service.RegisterFlags(fs)
	m.Storage.RegisterFlags(fs)
	m.Decryptor.RegisterFlags(fs)
	flagenv.Usage(fs, "AMR")
	if err := flagenv.Parse(fs, "AMR", args, m.Lookup); err != nil {
		return err
	}
	m.Storage.LoadKey(m.Lookup)
	return nil
}

// Run connects, ensures the topology and decrypts until ctx ends.
func (m *Main) Run(ctx context.Context) error {
	acct, err := storage.Open(m.Storage)
	if err != nil {
		return err
	}
	kek, err := keywrap.FromEnv(m.Lookup)
	if err != nil {
		return err // encryption is on by default: without the KEK no job key opens
	}
	// main handles the signals: ctx ends on SIGTERM/SIGINT.
	if m.rt, err = svc.New(ctx, m.Service, svc.Options{Lookup: m.Lookup, Signals: []os.Signal{}}); err != nil {
		return err
	}
	if err := m.rt.EnsureTopology(ctx); err != nil {
		return err
	}
	s, err := decryptor.New(m.rt, m.Decryptor, decryptor.Deps{Storage: acct, KEK: kek})
	if err != nil {
		return err
	}
	m.rt.Go(decryptor.Stage, s.Run)
	return m.rt.Run(ctx)
}

// Close drains the NATS connection and stops the HTTP server.
func (m *Main) Close() error {
	if m.rt == nil {
		return nil
	}
	return m.rt.Close()
}
