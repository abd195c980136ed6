// Command parser streams each decrypted package file (ManifestReady on amr.manifests.<jobID>) into
// typed records on amr.records.<jobID>, closes each job with a summary on amr.done.<jobID> and
// commits its change token. See README.md.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/stage/parser"
)

func main() {
	os.Exit(svc.Execute("parser", NewMain(), os.Args[1:], os.Stderr))
}

// Main is the parser program: its configuration and its runtime.
type Main struct {
	Service svc.Config
	Parser  parser.Config
	// Lookup reads the environment (flag fallbacks).
	Lookup func(string) (string, bool)

	rt *svc.Runtime
}

// NewMain returns a Main reading the process environment.
func NewMain() *Main {
	return &Main{Service: svc.Config{Name: parser.Stage}, Lookup: os.LookupEnv}
}

// ParseFlags reads the flags, each with an AMR_* environment fallback.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet(parser.Stage, flag.ContinueOnError)
	m.Service.RegisterFlags(fs)
	m.Parser.RegisterFlags(fs)
	flagenv.Usage(fs, "AMR")
	return flagenv.Parse(fs, "AMR", args, m.Lookup)
}

// Run connects, ensures the topology and parses until ctx ends.
func (m *Main) Run(ctx context.Context) error {
	var err error
	// main handles the signals: ctx ends on SIGTERM/SIGINT.
	if m.rt, err = svc.New(ctx, m.Service, svc.Options{Lookup: m.Lookup, Signals: []os.Signal{}}); err != nil {
		return err
	}
	if err := m.rt.EnsureTopology(ctx); err != nil {
		return err
	}
	s, err := parser.New(m.rt, m.Parser, parser.Deps{})
	if err != nil {
		return err
	}
	m.rt.Go(parser.Stage, s.Run)
	return m.rt.Run(ctx)
}

// Close drains the NATS connection and stops the HTTP server.
func (m *Main) Close() error {
	if m.rt == nil {
		return nil
	}
	return m.rt.Close()
}
