package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Summary is a job's summary (published once per job on amr.done.<jobID> when the job ended, DONE
// or FAILED, kept 90 days). The error wraps ErrNotFound when the job has none (not ended yet).
func (c *Client) Summary(ctx context.Context, jobID string) (*amrpipev1.JobSummary, error) {
	if err := topology.CheckToken(jobID); err != nil {
		return nil, fmt.Errorf("job %q: %w", jobID, err)
	}
	s, err := c.js.Stream(ctx, topology.StreamDone)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", topology.StreamDone, err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, topology.DoneSubject(jobID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("summary of job %s: %w", jobID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("summary of job %s: %w", jobID, err)
	}
	var sum amrpipev1.JobSummary
	if err := proto.Unmarshal(raw.Data, &sum); err != nil {
		return nil, fmt.Errorf("summary of job %s: %w", jobID, err)
	}
	return &sum, nil
}

// Summaries hands every job summary on AMR_DONE (of jobIDs only, when given) to fn in the order
// they were published, until ctx ends or, with follow false, the last one stored. An error from fn
// stops it and is returned.
func (c *Client) Summaries(ctx context.Context, follow bool, fn func(context.Context, *amrpipev1.JobSummary) error, jobIDs ...string) error {
	filters, err := subjects(topology.DoneSubject, jobIDs)
	if err != nil {
		return err
	}
	return c.follow(ctx, topology.StreamDone, filters, follow, func(msg jetstream.Msg) error {
		var s amrpipev1.JobSummary
		if err := bus.Decode(msg, &s); err != nil {
			return fmt.Errorf("summary on %s: %w", msg.Subject(), err)
		}
		return fn(ctx, &s)
	})
}

// Events returns the relayed events of one job stored on AMR_EVENTS (kept 5 days, as long as
// SharePoint keeps a job's status), in the order they were relayed; names limits them to these
// SharePoint event names ("JobError", "JobEnd", ...).
func (c *Client) Events(ctx context.Context, jobID string, names ...string) ([]*amrpipev1.RelayedEvent, error) {
	if err := topology.CheckToken(jobID); err != nil {
		return nil, fmt.Errorf("job %q: %w", jobID, err)
	}
	filters := []string{topology.JobEventsFilter(jobID)}
	if len(names) > 0 {
		filters = filters[:0]
		for _, n := range names {
			if err := topology.CheckToken(n); err != nil {
				return nil, fmt.Errorf("event name %q: %w", n, err)
			}
			filters = append(filters, topology.EventSubject(jobID, n))
		}
	}
	var out []*amrpipev1.RelayedEvent
	err := c.follow(ctx, topology.StreamEvents, filters, false, func(msg jetstream.Msg) error {
		var e amrpipev1.RelayedEvent
		if err := bus.Decode(msg, &e); err != nil {
			return fmt.Errorf("event on %s: %w", msg.Subject(), err)
		}
		out = append(out, &e)
		return nil
	})
	return out, err
}

// Issue is one of SharePoint's JobError, JobWarning or JobFatalError events of a job: what
// SharePoint reported about one object (URL, id, error code and message; a fatal error names no
// object).
type Issue struct {
	JobID string
	// Event is "JobError", "JobWarning" or "JobFatalError".
	Event string
	// Time is the event's time as SharePoint sent it (UTC).
	Time time.Time
	// Source says whether the progress API or the report queue relayed it first.
	Source amrpipev1.Source
	*amrpipev1.JobIssue
}

// Issue event names.
const (
	EventJobError      = "JobError"
	EventJobWarning    = "JobWarning"
	EventJobFatalError = "JobFatalError"
)

// Issues returns a job's JobError, JobWarning and JobFatalError events, in the order relayed.
func (c *Client) Issues(ctx context.Context, jobID string) ([]Issue, error) {
	events, err := c.Events(ctx, jobID, EventJobError, EventJobWarning, EventJobFatalError)
	if err != nil {
		return nil, err
	}
	out := make([]Issue, 0, len(events))
	for _, e := range events {
		ev := e.GetEvent()
		is := Issue{JobID: jobID, Event: ev.GetRawName(), Source: e.GetSource()}
		if t := ev.GetTime(); t != nil {
			is.Time = t.AsTime()
		}
		switch p := ev.GetPayload().(type) {
		case *amrpipev1.MigrationEvent_JobError:
			is.JobIssue, is.Event = p.JobError, EventJobError
		case *amrpipev1.MigrationEvent_JobWarning:
			is.JobIssue, is.Event = p.JobWarning, EventJobWarning
		case *amrpipev1.MigrationEvent_JobFatalError:
			is.JobIssue, is.Event = p.JobFatalError, EventJobFatalError
		default:
			is.JobIssue = &amrpipev1.JobIssue{}
		}
		out = append(out, is)
	}
	return out, nil
}

// subjects builds one subject per id, or the wildcard for every job.
func subjects(subject func(string) string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return []string{subject("*")}, nil
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := topology.CheckToken(id); err != nil {
			return nil, fmt.Errorf("job %q: %w", id, err)
		}
		out = append(out, subject(id))
	}
	return out, nil
}

// follow reads the messages of a limits stream matching filters, from the first stored, through
// an ordered consumer (nothing to acknowledge, nothing held back), and hands each to fn until ctx
// ends or, without follow, none is left.
func (c *Client) follow(ctx context.Context, stream string, filters []string, follow bool, fn func(jetstream.Msg) error) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters}
	if !follow {
		return bus.ReadStored(ctx, c.js, stream, cfg, 256, fn)
	}
	cons, err := c.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer func() { _ = bus.DropReader(ctx, c.js, stream, cons) }()
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}
