package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Feed names, as problems name them.
const (
	feedJobs        = "job records (amr_jobs)"
	feedPlans       = "plan status (amr_plans)"
	feedDeadLetters = "dead letters (" + topology.StreamDLQ + ")"
	feedEvents      = "SharePoint's throttling events (" + topology.StreamEvents + ")"
	feedThrottle    = "throttled hosts (" + topology.BucketThrottle + ")"
)

// Run feeds the dashboard from JetStream until ctx ends: the job records (a watch of amr_jobs, and
// a full read every Options.Resync in case the watch missed a final value), the plans' status,
// the newest dead letters, SharePoint's JobPostponed and JobEnd events and the throttled hosts.
// A feed that fails is shown on the page as a problem and started again after a pause; Run
// returns nil when ctx ends.
func (d *Dashboard) Run(ctx context.Context) error {
	synced := make(chan struct{})
	var wg sync.WaitGroup
	for _, f := range []struct {
		name string
		run  func(context.Context) error
	}{
		{feedJobs, func(ctx context.Context) error { return d.watchJobs(ctx, synced) }},
		{feedPlans, d.readPlans},
		{feedDeadLetters, d.readDeadLetters},
		{feedEvents, func(ctx context.Context) error {
			// After the first records: events of jobs not yet known would count for no job.
			select {
			case <-synced:
			case <-ctx.Done():
				return nil
			}
			return d.readEvents(ctx)
		}},
		{feedThrottle, d.watchThrottle},
	} {
		wg.Go(func() { d.keep(ctx, f.name, f.run) })
	}
	wg.Wait()
	return nil
}

// keep runs a feed again after each failure, with a growing pause, until ctx ends.
func (d *Dashboard) keep(ctx context.Context, name string, run func(context.Context) error) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stopped")
		}
		d.st.problem(name, err)
		d.log.Warn("dashboard feed failed", "feed", name, "attempt", attempt, "err", err)
		if backoff.Sleep(ctx, backoff.Delay(time.Second, 30*time.Second, attempt)) != nil {
			return
		}
	}
}

// watchJobs applies every job record and its changes; it closes synced (once) when the records
// stored at the start were applied.
func (d *Dashboard) watchJobs(ctx context.Context, synced chan struct{}) error {
	changes, err := d.store.Watch(ctx, "")
	if err != nil {
		return err
	}
	resync := time.NewTicker(d.o.Resync)
	defer resync.Stop()
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				return errors.New("the watch of amr_jobs ended")
			}
			switch {
			case c.Synced:
				d.st.problem(feedJobs, nil)
				select {
				case <-synced:
				default:
					close(synced)
				}
			case c.Record == nil:
				d.st.deleteJob(c.JobID)
			default:
				d.st.putJob(c.Record)
			}
		case <-resync.C:
			recs, err := d.store.Jobs(ctx)
			if err != nil {
				return err
			}
			for _, r := range recs {
				d.st.putJob(r)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// plansPerRound bounds the plan statuses read per Options.PlanInterval: each reads every spec's
// submission and job record of the plan.
const plansPerRound = 8

// readPlans reads again, every Options.PlanInterval, the status of the plans whose jobs changed
// (and forgets the pauses that ended, and looks for the validation report).
func (d *Dashboard) readPlans(ctx context.Context) error {
	tick := time.NewTicker(d.o.PlanInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
		// The clock and the file system change without telling the feeds.
		d.st.expirePauses(time.Now())
		d.st.setValidation(d.validationURL())
		for _, id := range d.st.dirtyPlans(plansPerRound) {
			st, err := d.store.PlanStatus(ctx, id)
			if errors.Is(err, jobstore.ErrNotFound) {
				continue // its planning is gone (older than its jobs' records): the plan stays "unknown"
			}
			if err != nil {
				d.st.markDirty(id)
				return fmt.Errorf("plan %s: %w", id, err)
			}
			d.st.setPlanStatus(st)
		}
		d.st.problem(feedPlans, nil)
	}
}

// readDeadLetters reads the newest Options.MaxDeadLetters dead letters, then each new one, through
// an ordered consumer (nothing is acknowledged or held on the server for the dashboard).
func (d *Dashboard) readDeadLetters(ctx context.Context) error {
	str, err := d.js.Stream(ctx, topology.StreamDLQ)
	if err != nil {
		return err
	}
	info, err := str.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	start := max(info.State.FirstSeq, last+1-min(last, uint64(d.o.MaxDeadLetters)))
	if d.deadNext > start {
		start = d.deadNext // a restart after a failure goes on where it stopped
	} else {
		d.st.setDeadTotal(int64(info.State.Msgs))
	}
	return d.follow(ctx, topology.StreamDLQ, []string{topology.DLQSubject("*")}, start, func(msg jetstream.Msg, seq uint64) error {
		var dl amrpipev1.DeadLetter
		if err := bus.Decode(msg, &dl); err != nil {
			dl = amrpipev1.DeadLetter{Subject: msg.Subject(), Reason: "undecodable dead letter: " + err.Error()}
		}
		d.st.addDeadLetter(seq, &dl, seq <= last)
		d.deadNext = seq + 1
		d.st.problem(feedDeadLetters, nil)
		return nil
	})
}

// readEvents reads SharePoint's JobPostponed and JobEnd events, stored and new.
func (d *Dashboard) readEvents(ctx context.Context) error {
	filters := []string{topology.EventSubject("*", topology.EventJobPostponed), topology.EventSubject("*", topology.EventJobEnd)}
	return d.follow(ctx, topology.StreamEvents, filters, d.eventsNext, func(msg jetstream.Msg, seq uint64) error {
		var ev amrpipev1.RelayedEvent
		if err := bus.Decode(msg, &ev); err == nil {
			d.st.addEvent(&ev)
		}
		d.eventsNext = seq + 1
		d.st.problem(feedEvents, nil)
		return nil
	})
}

// follow reads a stream's messages matching filters from sequence start (0: the first stored)
// through an ordered consumer, handing each to fn, until ctx ends.
func (d *Dashboard) follow(ctx context.Context, stream string, filters []string, start uint64, fn func(jetstream.Msg, uint64) error) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters}
	if start > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	cons, err := d.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = bus.DropReader(ctx, d.js, stream, cons) }()
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if err := fn(msg, meta.Sequence.Stream); err != nil {
			return err
		}
	}
}

// watchThrottle follows the hosts paused after SharePoint's 429/503 answers.
func (d *Dashboard) watchThrottle(ctx context.Context) error {
	kv, err := d.js.KeyValue(ctx, topology.BucketThrottle)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("the watch of " + topology.BucketThrottle + " ended")
			}
			if e == nil {
				d.st.problem(feedThrottle, nil)
				continue
			}
			// Pauses end by themselves (readPlans' tick forgets them); nothing deletes an entry.
			if host, until, ok := throttle.ParsePause(e.Key(), e.Value()); ok && e.Operation() == jetstream.KeyValuePut && until.After(time.Now()) {
				d.st.setPause(host, until)
			}
		case <-ctx.Done():
			return nil
		}
	}
}
