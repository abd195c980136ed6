package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
)

// EnvPrefix prefixes the environment variable of every flag: -max-pages is AMR_MAX_PAGES.
const EnvPrefix = "AMR"

// Main is the program every stage binary is, in the WTF Dial / upspin shape: ParseFlags reads
// flags (each with an AMR_* environment fallback) and secrets (environment only), Run connects,
// ensures the topology, builds the stage and runs it until ctx ends, Close drains. `amrctl dev`
// runs the same Main for each replica it starts, with arguments and an environment of its own.
type Main struct {
	Def Def
	// Config is the shared part of the configuration; Own the stage's own (Def.NewConfig).
	Config Config
	Own    Flagger
	// KEK is read from the environment by ParseFlags when the stage uses one and it is set.
	KEK *keywrap.KEK
	// Options are the process-level inputs of the runtime (log output, environment); the zero
	// value uses the process's own. Signals are Execute's business: the runtime gets none.
	Options svc.Options

	rt atomic.Pointer[svc.Runtime]
}

// NewMain returns the program of a stage with its defaults.
func NewMain(d Def) *Main {
	return &Main{Def: d, Config: Config{Service: svc.Config{Name: d.Name}}, Own: d.NewConfig()}
}

// ParseFlags reads the flags of args, the environment fallbacks of the flags not given, and the
// secrets; each secret may instead be in the file its NAME_FILE variable names
// (flagenv.WithFiles). A KEK that is set but malformed is an error here; whether the stage needs
// one is New's to say.
func (m *Main) ParseFlags(args []string) error {
	if m.Options.Lookup == nil {
		m.Options.Lookup = os.LookupEnv
	}
	fs := m.Def.FlagSet(&m.Config, m.Own)
	flagenv.Usage(fs, EnvPrefix)
	if err := flagenv.Parse(fs, EnvPrefix, args, m.Options.Lookup); err != nil {
		return err
	}
	m.Config.Service.Name = m.Def.Name
	// A secret may come from the file its _FILE variable names (container secrets); an
	// unreadable file is a configuration error, not a missing secret. Flags take no files:
	// -sp-cert-file's AMR_SP_CERT_FILE would read as the file of an AMR_SP_CERT.
	var fileErrs []error
	lookup := flagenv.WithFiles(m.Options.Lookup, os.ReadFile, func(_ string, err error) { fileErrs = append(fileErrs, err) })
	m.Config.loadSecrets(lookup, m.Def.Uses)
	if m.Def.Uses&UsesKEK != 0 {
		kek, err := keywrap.FromEnv(lookup)
		if ferr := errors.Join(fileErrs...); ferr != nil {
			return ferr
		}
		switch {
		case errors.Is(err, keywrap.ErrNoKEK):
		case err != nil:
			return err
		default:
			m.KEK = kek
		}
	}
	return errors.Join(fileErrs...)
}

// Run connects, ensures the topology, builds the stage and runs it until ctx ends (then drains).
func (m *Main) Run(ctx context.Context) error {
	o := m.Options
	o.Signals = []os.Signal{}
	rt, err := svc.New(ctx, m.Config.Service, o)
	if err != nil {
		return err
	}
	m.rt.Store(rt)
	// Ready once the stage is built (its metrics registered, its consumers about to bind), not
	// as soon as the topology is verified: a readiness probe or a test that reads the registry
	// must not see a half-started stage.
	var built atomic.Bool
	rt.AddReadyCheck("stage", func(context.Context) error {
		if !built.Load() {
			return errors.New("the stage is starting")
		}
		return nil
	})
	if err := rt.EnsureTopology(ctx); err != nil {
		return err
	}
	deps, err := Open(ctx, m.Def, m.Config, rt, m.KEK)
	if err != nil {
		return err
	}
	s, err := m.Def.Build(m.Own, deps)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Def.Name, err)
	}
	built.Store(true)
	rt.Go(m.Def.Name, s.Run)
	return rt.Run(ctx)
}

// Runtime is the running stage's runtime (nil before Run made it).
func (m *Main) Runtime() *svc.Runtime { return m.rt.Load() }

// Close drains the NATS connection, flushes traces and stops the HTTP server.
func (m *Main) Close() error {
	rt := m.rt.Load()
	if rt == nil {
		return nil
	}
	return rt.Close()
}

// Execute runs a stage as a process (svc.Execute): the whole of a stage binary's main.
func Execute(d Def, args []string, stderr io.Writer) int {
	return svc.Execute(d.Name, NewMain(d), args, stderr)
}
