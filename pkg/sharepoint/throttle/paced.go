package throttle

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// PauseReader is a Budget that can tell until when a host is paused. KV and Local are (until.go).
type PauseReader interface {
	Budget
	// PausedUntil returns the end of the host's pause; the zero time when it is not paused.
	PausedUntil(ctx context.Context, host string) (time.Time, error)
}

// LongPause is what a Paced budget returns instead of waiting when the host stays paused for
// longer than its MaxWait: the caller should hand its work back for Wait (a stage returns
// bus.Throttled, so the message is Nak'ed with that delay) rather than hold a handler.
type LongPause struct {
	Host string
	Wait time.Duration
}

func (e *LongPause) Error() string {
	return fmt.Sprintf("calls to %s are paused for another %s", e.Host, e.Wait.Round(time.Millisecond))
}

// PacedOptions configures NewPaced.
type PacedOptions struct {
	// MaxWait is the longest Wait blocks; a longer pause returns *LongPause. Default 20 s.
	MaxWait time.Duration
	// SlowDownBelow is the share of the RateLimit-Limit quota (0..1) under which Observe starts
	// spacing calls out. Default 0.1.
	SlowDownBelow float64
	// OnWait, if set, is told about every wait on a paused host: how long Wait blocked, or how
	// long the pause still was when it returned *LongPause (deferred). For metrics.
	OnWait func(host string, wait time.Duration, deferred bool)
	// Logger reports budget writes Observe could not make. Default: discard.
	Logger *slog.Logger
	Clock  Clock
}

// Paced is the Budget a stage's message handlers call SharePoint through (with Do). It shares
// the pauses of its underlying budget (the JetStream KV, so every replica sees them), never
// blocks longer than MaxWait, and its Observe method, given to spo.Options.Observer, slows calls
// down when SharePoint's RateLimit-* headers say the quota is nearly used, before throttling
// starts.
type Paced struct {
	budget PauseReader
	o      PacedOptions
}

// NewPaced wraps b.
func NewPaced(b PauseReader, o PacedOptions) *Paced {
	if o.MaxWait <= 0 {
		o.MaxWait = 20 * time.Second
	}
	if o.SlowDownBelow <= 0 {
		o.SlowDownBelow = 0.1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Paced{budget: b, o: o}
}

// Wait implements Budget: it sleeps while host is paused, up to MaxWait in all, and returns a
// *LongPause without sleeping when the pause (or its extension by another replica) would end
// later than that.
func (p *Paced) Wait(ctx context.Context, host string) error {
	start := p.o.Clock.now()
	deadline := start.Add(p.o.MaxWait)
	for {
		until, err := p.budget.PausedUntil(ctx, host)
		if err != nil {
			return err
		}
		now := p.o.Clock.now()
		if !until.After(now) {
			if waited := now.Sub(start); waited > 0 {
				p.report(host, waited, false)
			}
			return ctx.Err()
		}
		if until.After(deadline) {
			p.report(host, until.Sub(now), true)
			return &LongPause{Host: host, Wait: until.Sub(now)}
		}
		if err := p.o.Clock.sleep(ctx, until.Sub(now)); err != nil {
			return err
		}
	}
}

func (p *Paced) report(host string, d time.Duration, deferred bool) {
	if p.o.OnWait != nil {
		p.o.OnWait(host, d, deferred)
	}
}

// Pause implements Budget.
func (p *Paced) Pause(ctx context.Context, host string, until time.Time) error {
	return p.budget.Pause(ctx, host, until)
}

// minSlowDown is the shortest pause Observe records: shorter ones are not worth a budget write.
const minSlowDown = 100 * time.Millisecond

// SlowDown is the pause the RateLimit-* headers of a successful answer ask for: none while more
// than below (a share of RateLimit-Limit) of the quota is left, else what is left of the window
// spread over the calls still allowed, so the quota lasts until RateLimit-Reset.
func SlowDown(rl spo.RateLimit, below float64) time.Duration {
	if !rl.Present || rl.Limit <= 0 || rl.Reset <= 0 || float64(rl.Remaining) > below*float64(rl.Limit) {
		return 0
	}
	return rl.Reset / time.Duration(rl.Remaining+1)
}

// Observe slows calls to the observed host down when its RateLimit-* headers say the quota is
// nearly used (see SlowDown). Throttled answers are left to Do, which pauses for their
// Retry-After. Observe runs on the calling goroutine and writes the budget only when it slows down.
func (p *Paced) Observe(o spo.Observation) {
	if o.Status == http.StatusTooManyRequests || o.Status == http.StatusServiceUnavailable {
		return
	}
	d := SlowDown(o.RateLimit, p.o.SlowDownBelow)
	if d < minSlowDown {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.budget.Pause(ctx, o.Host, p.o.Clock.now().Add(d)); err != nil {
		p.o.Logger.Warn("slow down on RateLimit headers", "host", o.Host, "pause", d.String(), "err", err)
	}
}
