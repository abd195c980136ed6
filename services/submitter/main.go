// Command submitter is amrpipe's submitter stage: it turns AMR job specs (amr.specs.<planID>) into
// SharePoint AMR jobs, stores each job's key wrapped before the create call, and announces the jobs
// to the progress-relay (amr.jobs.submitted.<jobID>). See README.md for its flags, environment,
// subjects, buckets and metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/stage/submitter"
)

func main() {
	os.Exit(svc.Execute("submitter", &Main{}, os.Args[1:], os.Stderr))
}

// Main is the submitter process: its configuration, key-encryption key and runtime.
type Main struct {
	Service   svc.Config
	Submitter submitter.Config
	// KEK wraps the job keys (from AMR_KEK); nil with -encrypt=false.
	KEK *keywrap.KEK
	// Lookup reads the environment (flag fallbacks and secrets); nil is os.LookupEnv.
	Lookup func(string) (string, bool)

	rt *svc.Runtime
}

// ParseFlags reads the flags, each with an AMR_* environment fallback, and the secrets from the
// environment: the SharePoint token or certificate password, the storage key and the KEK.
func (m *Main) ParseFlags(args []string) error {
	if m.Lookup == nil {
		m.Lookup = os.LookupEnv
	}
	fs := flag.NewFlagSet("submitter", flag.ContinueOnError)
	m.Service.Name = "submitter"
	m.Service.RegisterFlags(fs)
	m.Submitter.RegisterFlags(fs)
	flagenv.Usage(fs, "AMR")
	if err := flagenv.Parse(fs, "AMR", args, m.Lookup); err != nil {
		return err
	}
	m.Submitter.SP.LoadSecrets(m.Lookup)
	m.Submitter.Storage.LoadKey(m.Lookup)
	if m.Submitter.Plaintext {
		return nil
	}
	var err error
	if m.KEK, err = keywrap.FromEnv(m.Lookup); err != nil {
		return fmt.Errorf("-encrypt is on: %w", err)
	}
	return nil
}

// Run connects, ensures the topology and submits until ctx ends.
func (m *Main) Run(ctx context.Context) error {
	rt, err := svc.New(ctx, m.Service, svc.Options{Lookup: m.Lookup, Signals: []os.Signal{}})
	if err != nil {
		return err
	}
	m.rt = rt
	if err := rt.EnsureTopology(ctx); err != nil {
		return err
	}
	s, err := submitter.New(rt, m.Submitter, m.KEK)
	if err != nil {
		return err
	}
	rt.Go(submitter.Stage, s.Run)
	return rt.Run(ctx)
}

// Close drains the NATS connection and stops the HTTP server.
func (m *Main) Close() error {
	if m.rt == nil {
		return nil
	}
	return m.rt.Close()
}
