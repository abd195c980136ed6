// Package stage is what every stage of the pipeline has in common: its row in the stage table
// (Def), its configuration (the shared parts, Config, and its own), what it is given to run
// (Deps: runtime, job store, SharePoint caller, storage account, KEK), the one translation of
// outside errors into the bus's verdicts (Verdict), and the one program every stage binary is
// (Main). The five stages live in the packages below this one; pkg/stage/registry lists them.
//
// Every stage has the same shape:
//
//	func Def() stage.Def                              // its row: name, flags, consumers, subjects
//	func New(cfg Config, deps stage.Deps) (*Stage, error) // no I/O
//	func (s *Stage) Run(ctx context.Context) error        // opens what it needs, consumes until ctx ends
package stage

import (
	"context"
	"flag"
)

// Uses says which shared parts of the configuration a stage takes.
type Uses uint8

// The shared parts.
const (
	// UsesSharePoint: the -sp-* flags and secrets, -max-throttle-wait, and Deps.SharePoint.
	UsesSharePoint Uses = 1 << iota
	// UsesStorage: the -storage-* flags, the account key, and Deps.Storage when configured.
	UsesStorage
	// UsesKEK: the key-encryption key (AMR_KEK) in Deps.KEK when set; the stage says when it is required.
	UsesKEK
)

// Flagger is a stage's own configuration: a pointer to a struct whose fields are its flags.
type Flagger interface {
	RegisterFlags(fs *flag.FlagSet)
}

// Runner is a built stage.
type Runner interface {
	// Run consumes until ctx ends, then drains; it opens what it needs first.
	Run(ctx context.Context) error
}

// Def is one row of the stage table: everything a stage binary, `amrctl dev` and the checks of
// the deployment files need to know of a stage.
type Def struct {
	// Name is the stage's one name (topology.Stage*): binary, durable consumer, NATS connection,
	// metrics label, dead-letter subject amr.dlq.<Name>.
	Name string
	// Summary says in one line what the stage does.
	Summary string
	// Uses lists the shared configuration parts the stage takes.
	Uses Uses
	// Consumers are the durable consumers it reads (topology).
	Consumers []string
	// Publishes are the subjects it publishes on, with <placeholders>.
	Publishes []string

	newOwn func() Flagger
	build  func(own Flagger, deps Deps) (Runner, error)
}

// Define makes a stage's row from its constructor: C is the stage's own configuration (its
// pointer registers the flags), S the built stage.
func Define[C any, PC interface {
	*C
	Flagger
}, S Runner](d Def, build func(C, Deps) (S, error)) Def {
	d.newOwn = func() Flagger { return PC(new(C)) }
	d.build = func(own Flagger, deps Deps) (Runner, error) {
		return build(*own.(PC), deps)
	}
	return d
}

// NewConfig returns the stage's own configuration with its defaults (registered on a throwaway
// flag set, so that a Config built in code has the defaults its flags show).
func (d Def) NewConfig() Flagger {
	own := d.newOwn()
	own.RegisterFlags(flag.NewFlagSet(d.Name, flag.ContinueOnError))
	return own
}

// Build builds the stage from its own configuration (from NewConfig or flags) and deps.
func (d Def) Build(own Flagger, deps Deps) (Runner, error) { return d.build(own, deps) }

// FlagSet registers every flag of the stage (shared parts and its own) on a new flag set,
// binding them to cfg and own.
func (d Def) FlagSet(cfg *Config, own Flagger) *flag.FlagSet {
	fs := flag.NewFlagSet(d.Name, flag.ContinueOnError)
	cfg.register(fs, d.Uses)
	own.RegisterFlags(fs)
	return fs
}

// Secrets lists the environment variables the stage reads secrets from (never flags).
func (d Def) Secrets() []string { return secrets(d.Uses) }
