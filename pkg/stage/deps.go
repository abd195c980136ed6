package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
)

// Deps are what a stage is given to run: New takes them and does no I/O of its own.
type Deps struct {
	// Name is the stage's name (Def.Name).
	Name string
	// Runtime is the stage's NATS connection, logger, metrics registry and tracer provider.
	Runtime *svc.Runtime
	// Jobs is the job store: job records and their lifecycle, cursors, tokens, keys.
	Jobs *jobstore.Store
	// SharePoint is the throttled SharePoint caller (UsesSharePoint; nil otherwise).
	SharePoint *SharePoint
	// Storage is the manifest storage account (UsesStorage, when configured; nil otherwise).
	Storage *storage.Account
	// KEK wraps and unwraps job keys (UsesKEK, when AMR_KEK is set; nil otherwise).
	KEK *keywrap.KEK
	// Now is the clock.
	Now func() time.Time
}

// Open makes the deps of a stage on its runtime: the job store, and the SharePoint caller and
// storage account when the stage uses them. kek may be nil.
func Open(ctx context.Context, d Def, cfg Config, rt *svc.Runtime, kek *keywrap.KEK) (Deps, error) {
	deps := Deps{Name: d.Name, Runtime: rt, KEK: kek, Now: time.Now}
	err := rt.Retry(ctx, "open the job store", func(ctx context.Context) error {
		var err error
		deps.Jobs, err = jobstore.Open(ctx, rt.JS, deps.Now)
		return err
	})
	if err != nil {
		return Deps{}, fmt.Errorf("%s: %w", d.Name, err)
	}
	if err := deps.Jobs.Instrument(rt.Registry); err != nil {
		return Deps{}, fmt.Errorf("%s: %w", d.Name, err)
	}
	if d.Uses&UsesSharePoint != 0 {
		if deps.SharePoint, err = OpenSharePoint(ctx, rt, cfg.SharePoint, cfg.MaxThrottleWait); err != nil {
			return Deps{}, fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	if d.Uses&UsesStorage != 0 {
		deps.Storage, err = storage.Open(cfg.Storage)
		if errors.Is(err, storage.ErrNotConfigured) {
			deps.Storage, err = nil, nil // the stage says whether it needs one
		}
		if err != nil {
			return Deps{}, fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	if d.Uses&UsesKEK == 0 {
		deps.KEK = nil
	}
	return deps, nil
}

// Logger is the runtime's logger with the stage's name.
func (d Deps) Logger() *slog.Logger { return d.Runtime.Log.With("stage", d.Name) }

// Consumer is one durable consumer a stage reads and how.
type Consumer struct {
	// Name is the durable consumer (topology.Consumer*).
	Name string
	// Handler handles one message; its error is judged by Verdict.
	Handler bus.Handler
	// Concurrency is how many handlers run at once (default 1).
	Concurrency int
	// KeepAlive is the InProgress interval while a handler runs (0: a third of AckWait).
	KeepAlive time.Duration
	// OnDeadLetter, if set, runs before every dead letter of this consumer (bus.ConsumeOptions).
	OnDeadLetter func(ctx context.Context, msg jetstream.Msg, reason string) error
	// ThrottleBudget, if set, is how long after its publication a message may be throttled
	// without counting (bus.ConsumeOptions); zero waits throttling out, as SharePoint's must be.
	ThrottleBudget time.Duration
}

// Consume binds the durable consumer and consumes it until ctx ends, with the stage's name,
// metrics, traces, drain timeout and the one error translation (Verdict).
func (d Deps) Consume(ctx context.Context, c Consumer) error {
	var cons jetstream.Consumer
	err := d.Runtime.Retry(ctx, "bind consumer "+c.Name, func(ctx context.Context) error {
		var err error
		cons, err = topology.BindConsumer(ctx, d.Runtime.JS, c.Name)
		return err
	})
	if err != nil {
		return err
	}
	o := d.Runtime.ConsumeOptions(d.Name)
	o.Classify = Verdict
	o.Concurrency = c.Concurrency
	o.KeepAlive = c.KeepAlive
	o.OnDeadLetter = c.OnDeadLetter
	o.ThrottleBudget = c.ThrottleBudget
	return bus.Consume(ctx, cons, c.Handler, o)
}

// Group runs fns until the first returns, then cancels the others and waits for them; it
// returns the first error. A stage with two consumers (or a consumer and a queue reader) runs
// them with it.
func Group(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- fn(ctx) }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
		cancel() // one stopping stops the others
	}
	return first
}
