package relay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Why a job is polled again; each picks its wait (delay).
const (
	whyFirst     = "first"      // just submitted: the first poll comes after a running job's interval
	whyInterval  = "interval"   // the job's state sets the pace
	whyMorePages = "more pages" // the poll stopped at -max-pages with events left
	whyConfirm   = "confirm"    // the end was seen: one quiet poll confirms nothing follows
	whyNotYet    = "not found yet"
	whyRefused   = "credentials refused"
	whyTransient = "transient error"
	whyThrottled = "throttled"
	whyQueue     = "queue event" // the report queue saw the job end: poll for the authoritative end
)

// again is pollJob's answer for a job it must poll again: why, and the job's state then.
type again struct {
	why   string
	state amrpipev1.JobState
}

func (a *again) Error() string { return "poll again: " + a.why }

// jitterFraction spreads polls of jobs submitted together over ±10% of their interval.
const jitterFraction = 0.1

// pace is how often jobs are polled: the intervals by state, and the tenant's budget.
type pace struct {
	running, queued, withQueue time.Duration
	// perMinute is the polls per minute one SharePoint host (tenant) gets from all replicas.
	perMinute float64
}

// delay is the wait before the next poll of a job: the interval of its state (a queued or
// postponed job is polled slowly, a running one about once a minute, and less often when the
// report queue brings its events and its end), never less than the tenant's budget allows for
// the jobs followed on its host (live), spread by jitter (u is uniform in [0,1)). A poll that
// stopped at the page bound goes on at once, as far as the budget allows.
func (p pace) delay(a *again, live int, queue bool, u float64) time.Duration {
	base := p.running
	switch a.why {
	case whyMorePages:
		base = 0
	case whyFirst:
		if queue {
			base = p.withQueue
		}
	case whyInterval:
		switch a.state {
		case amrpipev1.JobState_JOB_STATE_UNSPECIFIED, amrpipev1.JobState_JOB_STATE_SUBMITTED, amrpipev1.JobState_JOB_STATE_QUEUED:
			base = p.queued
		case amrpipev1.JobState_JOB_STATE_RUNNING:
			if queue {
				base = p.withQueue
			}
		}
	case whyQueue:
		base = 2 * time.Second
	}
	d := base
	if p.perMinute > 0 {
		d = max(d, time.Duration(float64(live)/p.perMinute*float64(time.Minute)))
	}
	if a.why == whyMorePages || a.why == whyQueue {
		return d
	}
	return time.Duration(float64(d) * (1 - jitterFraction + 2*jitterFraction*u))
}

// timerOf decodes one delivery of the relay's consumer: a job's hand-off from the submitter
// (SubmittedJob, its first poll) or a due poll (PollTimer).
func (s *Stage) timerOf(msg jetstream.Msg) (*amrpipev1.PollTimer, job, error) {
	t := &amrpipev1.PollTimer{}
	subject, want := msg.Subject(), ""
	if strings.HasPrefix(subject, topology.JobSubject("")) {
		var sj amrpipev1.SubmittedJob
		if err := bus.Decode(msg, &sj); err != nil {
			return nil, job{}, err
		}
		t.Job, want = &sj, topology.JobSubject(sj.GetJobId())
	} else {
		if err := bus.Decode(msg, t); err != nil {
			return nil, job{}, err
		}
		want = topology.DueSubject(t.GetJob().GetJobId())
	}
	j, err := s.jobOf(t.GetJob(), msg)
	if err == nil && subject != want {
		err = &bus.Permanent{Reason: fmt.Sprintf("job id %q does not match subject %s", j.id, subject)}
	}
	return t, j, err
}

// schedule publishes the job's next poll, due after d: a JetStream message schedule that the
// server delivers on amr.jobs.due.<jobID> then. It replaces any schedule of the job (one message
// per subject), so a job has one next poll whoever scheduled it. The message id is the delivery's
// stream sequence: a redelivered poll schedules nothing twice.
func (s *Stage) schedule(ctx context.Context, j job, t *amrpipev1.PollTimer, d time.Duration, why, msgID string) error {
	next := &amrpipev1.PollTimer{Job: t.GetJob(), Poll: t.GetPoll() + 1, StatusChecked: t.GetStatusChecked(), Reason: why}
	// The server fires schedules by its clock, to the second: round up, never poll before a
	// Retry-After is over.
	at := time.Now().Add(d)
	if at.Nanosecond() != 0 {
		at = at.Truncate(time.Second).Add(time.Second)
	}
	if _, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.ScheduleSubject(j.host, j.id), next, msgID,
		jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(topology.DueSubject(j.id))); err != nil {
		return fmt.Errorf("schedule the next poll of job %s: %w", j.id, err)
	}
	s.metrics.waits.WithLabelValues(strings.ReplaceAll(why, " ", "_")).Observe(d.Seconds())
	return nil
}

// liveJobs counts the jobs followed, per SharePoint host, from the schedules in AMR_JOBS (one per
// live job): every replica sees the same count, so the tenant's budget holds however many replicas
// share it. It is read again at most every refresh.
type liveJobs struct {
	refresh time.Duration
	mu      sync.Mutex
	at      time.Time
	byHost  map[string]int
}

// on returns the jobs followed on host (its HostToken), reading the stream when the count is old.
// A failed read keeps the last count: the budget is a pace, not a guarantee.
func (l *liveJobs) on(ctx context.Context, js jetstream.JetStream, host string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byHost != nil && time.Since(l.at) < l.refresh {
		return l.byHost[host], nil
	}
	st, err := js.Stream(ctx, topology.StreamJobs)
	if err != nil {
		return l.byHost[host], err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(topology.ScheduleFilter("*")))
	if err != nil {
		return l.byHost[host], err
	}
	by := map[string]int{}
	for subj := range info.State.Subjects {
		// amr.jobs.schedule.<host>.<job>
		parts := strings.Split(subj, ".")
		if len(parts) == 5 {
			by[parts[3]]++
		}
	}
	l.byHost, l.at = by, time.Now()
	return by[host], nil
}

// total is the number of jobs followed at the last count.
func (l *liveJobs) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.byHost {
		n += c
	}
	return n
}

// delayFor is the wait before the next poll of j.
func (s *Stage) delayFor(ctx context.Context, j job, a *again) time.Duration {
	live, err := s.live.on(ctx, s.deps.Runtime.JS, j.host)
	if err != nil {
		s.log.WarnContext(ctx, "count the jobs followed", "err", err)
	}
	s.metrics.followed.Set(float64(s.live.total()))
	return s.cfg.pace().delay(a, live, s.queue != "" && j.submitted.GetQueue() != "", rand.Float64())
}

// bringForward polls a job soon because the report queue says it ended: the progress API is
// the authoritative source of ends, and waiting the whole interval for it would only delay the
// job. The schedule replaces the job's next poll; a job no longer followed is left alone.
func (s *Stage) bringForward(ctx context.Context, rec *amrpipev1.JobRecord, eventID string) error {
	if rec.GetEndConfirmed() || rec.GetState() == amrpipev1.JobState_JOB_STATE_DONE || rec.GetState() == amrpipev1.JobState_JOB_STATE_FAILED {
		return nil
	}
	sj := submittedOf(rec)
	j, err := s.jobOf(sj, nil)
	if err != nil {
		return nil // a record without a site URL is not followed
	}
	a := &again{why: whyQueue, state: rec.GetState()}
	return s.schedule(ctx, j, &amrpipev1.PollTimer{Job: sj}, s.delayFor(ctx, j, a), whyQueue, "early/"+j.id+"/"+eventID)
}

// submittedOf rebuilds a job's hand-off from its record, for a schedule made outside a poll.
func submittedOf(rec *amrpipev1.JobRecord) *amrpipev1.SubmittedJob {
	return &amrpipev1.SubmittedJob{JobId: rec.GetJobId(), Spec: rec.GetSpec(), Container: rec.GetContainer(), Queue: rec.GetQueue(),
		Encrypted: rec.GetEncrypted(), ChangeToken: rec.GetChangeToken(), Submitted: rec.GetSubmitted()}
}
