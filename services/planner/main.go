// Command planner is amrpipe's planner stage: it turns plans (amr.plans.submit) and probe results
// (amr.plans.probe) into AMR job specs (amr.specs.<planID>), sizing folders through SharePoint's
// REST API. See README.md for its flags, environment, subjects, buckets and metrics.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/stage/planner"
)

func main() {
	os.Exit(svc.Execute("planner", &Main{}, os.Args[1:], os.Stderr))
}

// Main is the planner process: its configuration and runtime.
type Main struct {
	Service svc.Config
	Planner planner.Config
	// Lookup reads the environment (flag fallbacks and secrets); nil is os.LookupEnv.
	Lookup func(string) (string, bool)

	rt *svc.Runtime
}

// ParseFlags reads the flags, each with an AMR_* environment fallback, and the SharePoint
// secrets from the environment.
func (m *Main) ParseFlags(args []string) error {
	if m.Lookup == nil {
		m.Lookup = os.LookupEnv
	}
	fs := flag.NewFlagSet("planner", flag.ContinueOnError)
	m.Service.Name = "planner"
	m.Service.RegisterFlags(fs)
	m.Planner.RegisterFlags(fs)
	flagenv.Usage(fs, "AMR")
	if err := flagenv.Parse(fs, "AMR", args, m.Lookup); err != nil {
		return err
	}
	m.Planner.SP.LoadSecrets(m.Lookup)
	return nil
}

// Run connects, ensures the topology and plans until ctx ends.
func (m *Main) Run(ctx context.Context) error {
	rt, err := svc.New(ctx, m.Service, svc.Options{Lookup: m.Lookup, Signals: []os.Signal{}})
	if err != nil {
		return err
	}
	m.rt = rt
	if err := rt.EnsureTopology(ctx); err != nil {
		return err
	}
	s, err := planner.New(rt, m.Planner)
	if err != nil {
		return err
	}
	rt.Go(planner.Stage, s.Run)
	return rt.Run(ctx)
}

// Close drains the NATS connection and stops the HTTP server.
func (m *Main) Close() error {
	if m.rt == nil {
		return nil
	}
	return m.rt.Close()
}
