package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Client reads what amrpipe exported: records, job summaries, plan status and SharePoint's
// per-object issues. It is safe for concurrent use; each Consumer it opens is not.
type Client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
	owns bool // Close closes nc

	mu    sync.Mutex
	store *jobstore.Store // opened on first use
}

// Option configures a Client.
type Option func(*Client)

// WithLogger sets the logger (default slog.Default()). The client logs handler errors and
// acknowledgements that failed, with the batch's job, file and stream sequence.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) {
		if l != nil {
			c.log = l
		}
	}
}

// Connect connects to the NATS servers at url (comma-separated, as nats.Connect takes them);
// Close closes the connection. Use New to share a connection of your own.
func Connect(ctx context.Context, url string, opts ...Option) (*Client, error) {
	nopts := []nats.Option{nats.Name("amrpipe-client"), nats.Timeout(10 * time.Second), nats.MaxReconnects(-1)}
	if dl, ok := ctx.Deadline(); ok {
		nopts = append(nopts, nats.Timeout(max(time.Until(dl), time.Second)))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	c, err := New(ctx, nc, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.owns = true
	return c, nil
}

// New returns a client on a connection the caller owns: Close leaves it open.
func New(ctx context.Context, nc *nats.Conn, opts ...Option) (*Client, error) {
	if nc == nil {
		return nil, errors.New("client: nil NATS connection")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c := &Client{nc: nc, js: js, log: slog.Default()}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// JetStream is the client's JetStream context, for what this package does not cover.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Close drains and closes the connection when Connect made it (unacknowledged records are
// delivered again to the consumer's next run); it does nothing to a connection given to New.
func (c *Client) Close() error {
	if !c.owns {
		return nil
	}
	if err := c.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.nc.Close()
		return fmt.Errorf("close NATS connection: %w", err)
	}
	// Drain returns at once; wait for it so that pending acknowledgements reach the server.
	for deadline := time.Now().Add(10 * time.Second); !c.nc.IsClosed() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	c.nc.Close()
	return nil
}

// jobs returns the job store, opened on first use.
func (c *Client) jobs(ctx context.Context) (*jobstore.Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.store != nil {
		return c.store, nil
	}
	s, err := jobstore.Open(ctx, c.js, time.Now)
	if err != nil {
		return nil, fmt.Errorf("open the job store: %w", err)
	}
	c.store = s
	return s, nil
}

// PlanStatus is what became of a plan: every spec with its outcome, its jobs' states and totals
// (the same computation as `amrctl plan status`). The error wraps ErrNotFound for a plan nobody
// planned.
func (c *Client) PlanStatus(ctx context.Context, planID string) (*amrpipev1.PlanStatus, error) {
	s, err := c.jobs(ctx)
	if err != nil {
		return nil, err
	}
	return s.PlanStatus(ctx, planID)
}

// Job is a job's record: its spec, state, counts, times and last error. The error wraps
// ErrNotFound for a job the pipeline has no record of (never submitted, or older than 90 days).
func (c *Client) Job(ctx context.Context, jobID string) (*amrpipev1.JobRecord, error) {
	s, err := c.jobs(ctx)
	if err != nil {
		return nil, err
	}
	rec, _, err := s.Job(ctx, jobID)
	return rec, err
}

// ErrNotFound: no such plan, job or summary (the job store's own error, so errors.Is matches
// either).
var ErrNotFound = jobstore.ErrNotFound
