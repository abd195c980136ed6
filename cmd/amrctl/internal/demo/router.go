package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// router is the inventory sink's Ingester over several open passes: a record goes to the pass of
// its job's plan (the job store names a job's plan), so the passes of two tenants, or of two
// plans of one tenant, take records from one stream at once.
type router struct {
	job func(ctx context.Context, jobID string) (*amrpipev1.JobRecord, uint64, error)

	mu     sync.Mutex
	byPlan map[string]*inventory.Pass
	byJob  map[string]*inventory.Pass
}

func newRouter(job func(ctx context.Context, jobID string) (*amrpipev1.JobRecord, uint64, error)) *router {
	return &router{job: job, byPlan: map[string]*inventory.Pass{}, byJob: map[string]*inventory.Pass{}}
}

// route sends the records of plan's jobs to pass.
func (r *router) route(plan string, pass *inventory.Pass) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byPlan[plan] = pass
}

// Ingest writes recs into their passes, one transaction per pass. A job whose plan has no pass
// is an error: the batch is not acknowledged and comes again.
func (r *router) Ingest(ctx context.Context, recs []*amrpipev1.Record) error {
	groups := map[*inventory.Pass][]*amrpipev1.Record{}
	var order []*inventory.Pass
	for _, rec := range recs {
		p, err := r.pass(ctx, rec.GetJobId())
		if err != nil {
			return err
		}
		if _, ok := groups[p]; !ok {
			order = append(order, p)
		}
		groups[p] = append(groups[p], rec)
	}
	// The store takes SQLite's transactions in turn; the passes convert their records at once.
	for _, p := range order {
		if err := p.Ingest(ctx, groups[p]); err != nil {
			return err
		}
	}
	return nil
}

func (r *router) pass(ctx context.Context, jobID string) (*inventory.Pass, error) {
	r.mu.Lock()
	p, ok := r.byJob[jobID]
	r.mu.Unlock()
	if ok {
		return p, nil
	}
	j, _, err := r.job(ctx, jobID)
	if err != nil {
		return nil, fmt.Errorf("records of job %s: %w", jobID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok = r.byPlan[j.GetSpec().GetPlanId()]
	if !ok {
		return nil, fmt.Errorf("records of job %s: plan %q has no inventory pass", jobID, j.GetSpec().GetPlanId())
	}
	r.byJob[jobID] = p
	return p, nil
}

// drained waits until the downstream consumer has nothing pending or unacknowledged: once the
// pipeline is idle, every record batch is then committed into its pass.
func drained(ctx context.Context, js jetstream.JetStream) error {
	cons, err := js.Consumer(ctx, topology.StreamRecords, topology.DefaultDownstream)
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ci, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("downstream consumer: %w", err)
		}
		if ci.NumPending == 0 && ci.NumAckPending == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the inventory sink (%d batches pending, %d unacknowledged): %w", ci.NumPending, ci.NumAckPending, ctx.Err())
		}
	}
}
