package relay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// job is what one poll knows of its job.
type job struct {
	id, site  string
	host      string // topology.HostToken of the site's host: the tenant whose budget it uses
	submitted *amrpipev1.SubmittedJob
	since     time.Time // submission (or first delivery) time
}

// poll is the handler of the relay's consumer: one poll of a job, on its hand-off or when its
// schedule is due. A job that is not over gets its next poll scheduled (schedule) before the
// delivery is acknowledged: the poll timers live in the stream as message schedules, not in the
// consumer's pending list, so the jobs followed are not bounded by MaxAckPending.
func (s *Stage) poll(ctx context.Context, msg jetstream.Msg) error {
	t, j, err := s.timerOf(msg)
	if err != nil {
		s.metrics.polls.WithLabelValues("bad_message").Inc()
		return err
	}
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	msgID := fmt.Sprintf("schedule/%s/%d", j.id, meta.Sequence.Stream)
	if t.GetPoll() == 0 && strings.HasPrefix(msg.Subject(), topology.JobSubject("")) {
		// The hand-off: a job just created has nothing worth a call yet (SharePoint queues it
		// first), so its first poll waits a running job's interval. A JobEnd on the report queue
		// brings it forward.
		a := &again{why: whyFirst}
		return s.schedule(ctx, j, t, s.delayFor(ctx, j, a), a.why, msgID)
	}
	outcome, err := s.pollJob(ctx, j, t)
	s.metrics.polls.WithLabelValues(outcome).Inc()
	var a *again
	if errors.As(err, &a) {
		return s.schedule(ctx, j, t, s.delayFor(ctx, j, a), a.why, msgID)
	}
	if v := stage.Verdict(err); v.Class == bus.ClassThrottled {
		// SharePoint's Retry-After, not counted; the schedule keeps the delivery out of the
		// pending list while the tenant cools down.
		d := v.Delay
		if d <= 0 {
			d = 10 * time.Second
		}
		return s.schedule(ctx, j, t, d, whyThrottled, msgID)
	}
	return err
}

// jobOf checks a job's hand-off; msg, when given, dates a hand-off without a submission time.
func (s *Stage) jobOf(sj *amrpipev1.SubmittedJob, msg jetstream.Msg) (job, error) {
	j := job{id: sj.GetJobId(), site: sj.GetSpec().GetSiteUrl(), submitted: sj}
	if err := topology.CheckToken(j.id); err != nil {
		return job{}, &bus.Permanent{Reason: fmt.Sprintf("job id %q: %v", truncate(j.id, 64), err)}
	}
	u, err := url.Parse(j.site)
	if err != nil || u.Hostname() == "" {
		return job{}, &bus.Permanent{Reason: fmt.Sprintf("job %s: spec has no absolute site URL", j.id)}
	}
	if j.host, err = topology.HostToken(u.Hostname()); err != nil {
		return job{}, &bus.Permanent{Reason: fmt.Sprintf("job %s: %v", j.id, err)}
	}
	switch {
	case sj.GetSubmitted().IsValid():
		j.since = sj.GetSubmitted().AsTime()
	case msg != nil:
		if meta, err := msg.Metadata(); err == nil {
			j.since = meta.Timestamp
		}
	}
	return j, nil
}

// pollJob reads the job's new events page by page, relays them, and says whether to poll again.
// It returns the outcome label of the poll and nil when the job is over (the relay stops following
// it), an *again to poll it again, or the error that settles the message.
func (s *Stage) pollJob(ctx context.Context, j job, t *amrpipev1.PollTimer) (string, error) {
	if rec, _, err := s.deps.Jobs.Job(ctx, j.id); err == nil && (rec.GetEndConfirmed() || jobstore.Final(rec)) {
		return "over", nil // confirmed or ended by an earlier poll; a late schedule (queue) came anyway
	} else if err != nil && !errors.Is(err, jobstore.ErrNotFound) {
		return "error", err
	}
	token, movedAt, err := s.deps.Jobs.CursorAt(ctx, j.id)
	if err != nil {
		return "error", err
	}
	if !movedAt.IsZero() {
		j.since = movedAt
	}
	var (
		ended   bool // this poll read an end
		lastEnd bool // and the end was the last event read
		drained bool
		fresh   int
		rec     *amrpipev1.JobRecord
	)
	for range s.cfg.MaxPages {
		p, err := s.progress(ctx, j, token)
		if err != nil {
			return s.pollFailed(ctx, j, token, err)
		}
		if len(p.Logs) == 0 {
			drained = true
			break
		}
		short := s.pages.short(j.host, len(p.Logs))
		events, problems, unknown := s.decodePage(j.id, token, p.Logs)
		if rec, _, err = s.relay(ctx, j.id, amrpipev1.Source_SOURCE_PROGRESS_API, events, problems, j.submitted); err != nil {
			return "error", err
		}
		for _, u := range unknown {
			if err := s.deadLetterUnknown(ctx, j.id, u); err != nil {
				return "error", err
			}
		}
		lastEnd = false // a page of only undecodable or unknown events follows whatever was the end
		for i, e := range events {
			isEnd := isJobEnd(e.ev.GetType())
			ended = ended || isEnd
			lastEnd = isEnd && i == len(events)-1 && len(events) == len(p.Logs)
		}
		fresh += len(p.Logs)
		if p.NextToken == token {
			// Events without a new cursor would be read again forever; take them as the last page.
			drained = true
			break
		}
		// Only now, with the page published: a crash before this line reads the page again.
		if err := s.deps.Jobs.PutCursor(ctx, j.id, p.NextToken); err != nil {
			return "error", err
		}
		token = p.NextToken
		if short {
			// A page shorter than SharePoint's longest holds all the log had: reading on would
			// only fetch the empty page. The next poll goes on from this cursor.
			drained = true
			break
		}
	}
	if !drained {
		return "events", &again{why: whyMorePages} // more pages wait
	}
	if !ended && fresh == 0 {
		if rec, _, err = s.deps.Jobs.Job(ctx, j.id); err != nil && !errors.Is(err, jobstore.ErrNotFound) {
			return "error", err
		}
	}
	if ended && (j.submitted.GetSpec().GetMulti() || !lastEnd) {
		// One more poll confirms nothing follows: AMR may send a JobEnd per URL of a multi-URL
		// job, and an end that was not the last event read is not the end of the log.
		return "events", &again{why: whyConfirm}
	}
	// The end of a single-URL job was the last event of the log (its JobEnd closes the log), or
	// the job ended by an earlier poll and the log holds nothing new since: SharePoint has sent
	// every event of the job (every JobEnd of a multi-URL job too). That is the evidence the
	// parser needs to complete it.
	if rec.GetEnded() != nil {
		if err := s.confirmEnd(ctx, j.id); err != nil {
			return "error", err
		}
		s.log.InfoContext(ctx, "job ended", "job", j.id, "state", rec.GetState().String(), "objects", rec.GetObjectsProcessed())
		return "ended", nil
	}
	now := s.deps.Now()
	if fresh == 0 && s.cfg.StatusFallback > 0 && now.Sub(j.since) >= s.cfg.StatusFallback &&
		(!t.GetStatusChecked().IsValid() || now.Sub(t.GetStatusChecked().AsTime()) >= s.cfg.StatusFallback) {
		// At most once per -status-fallback: the call is being retired, and silence is normal for
		// a job SharePoint keeps queued.
		t.StatusChecked = timestamppb.New(now)
		done, err := s.statusFallback(ctx, j)
		if err != nil {
			return "error", err
		}
		if done {
			return "ended", nil
		}
	}
	outcome := "empty"
	if fresh > 0 {
		outcome = "events"
	}
	return outcome, &again{why: whyInterval, state: rec.GetState()}
}

// isJobEnd reports an event that ends a job's log.
func isJobEnd(t amrpipev1.EventType) bool {
	return t == amrpipev1.EventType_EVENT_TYPE_JOB_END || t == amrpipev1.EventType_EVENT_TYPE_JOB_CANCELLED
}

// pageSizes learns, per SharePoint host, the longest page GetMigrationJobProgress has returned.
// SharePoint documents no page size; a page shorter than the longest seen is taken as all the log
// held then, which spares the empty page that would otherwise end every poll. A wrong guess costs
// a call (a page as long as the longest is read on) or a poll interval of latency (events that
// came after the page wait for the next poll), never an event: the cursor keeps the place.
type pageSizes struct {
	mu     sync.Mutex
	byHost map[string]int
}

// short reports whether a page of n events is shorter than host's longest, and learns n.
func (p *pageSizes) short(host string, n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byHost == nil {
		p.byHost = map[string]int{}
	}
	longest := p.byHost[host]
	p.byHost[host] = max(longest, n)
	return n < longest
}

// progress reads one page through the shared throttling budget.
func (s *Stage) progress(ctx context.Context, j job, token string) (spo.Progress, error) {
	return stage.Call(ctx, s.sp, j.site, func(ctx context.Context) (spo.Progress, error) {
		return s.sp.Client.GetMigrationJobProgress(ctx, j.site, j.id, token)
	})
}

// decodePage decodes a page's log strings. An event that does not decode is counted, logged and
// returned as a problem (the job then cannot succeed: what it said is unknown) and skipped: it
// must not stop the job's other events. An event whose name is outside SharePoint's documented
// set is returned in unknown, to be dead-lettered: it changes no job.
func (s *Stage) decodePage(jobID, token string, logs []string) (events []event, problems, unknown []string) {
	base, numeric := uint64(0), false
	if token == "" {
		numeric = true
	} else if n, err := strconv.ParseUint(token, 10, 64); err == nil {
		base, numeric = n, true
	}
	events = make([]event, 0, len(logs))
	for i, l := range logs {
		var seq uint64
		if numeric {
			seq = base + uint64(i) + 1
		}
		e, err := newEvent(jobID, []byte(l), seq)
		if errors.Is(err, errUnknownEvent) {
			unknown = append(unknown, l)
			continue
		}
		if err != nil {
			s.metrics.malformed.WithLabelValues(sourceLabel(amrpipev1.Source_SOURCE_PROGRESS_API)).Inc()
			p := fmt.Sprintf("malformed event %d of the page after cursor %q skipped: %v", i+1, token, err)
			s.log.Warn("malformed event", "job", jobID, "problem", p)
			problems = append(problems, p)
			continue
		}
		events = append(events, e)
	}
	return events, problems, unknown
}

// pollDeadLettered is the dead-letter hook of the poll consumer: a job the relay stops following,
// whatever the cause (a permanent error, retries exhausted, a poll that kept crashing), ends failed
// with the reason, and the parser is told, so the job does not wait for an end that will never be
// seen. It is idempotent.
func (s *Stage) pollDeadLettered(ctx context.Context, msg jetstream.Msg, reason string) error {
	t, _, err := s.timerOf(msg)
	if t == nil || (err != nil && !isPermanent(err)) || topology.CheckToken(t.GetJob().GetJobId()) != nil {
		return nil // not a job we can name: the dead letter is all there is to say
	}
	id := t.GetJob().GetJobId()
	why := "the progress-relay stopped following the job: " + reason
	if _, err := s.deps.Jobs.Fire(ctx, id, jobstore.Failed(why, true)); err != nil && !errors.Is(err, jobstore.ErrRefused) {
		return err
	}
	return s.deps.JobChanged(ctx, id, "relay-gave-up", why)
}

// confirmEnd records that the progress API showed nothing after the job's end and tells the
// parser, which may now complete the job.
func (s *Stage) confirmEnd(ctx context.Context, jobID string) error {
	if _, err := s.deps.Jobs.Fire(ctx, jobID, jobstore.EndConfirmed()); err != nil && !errors.Is(err, jobstore.ErrRefused) {
		return err
	}
	return s.deps.JobChanged(ctx, jobID, "end-confirmed", "the progress API shows nothing after the job's end")
}

// pollFailed decides what a failed progress call means for the job.
func (s *Stage) pollFailed(ctx context.Context, j job, token string, err error) (string, error) {
	if ctx.Err() != nil {
		return "error", err
	}
	if errors.Is(err, spo.ErrJobNotFound) || errors.Is(err, spo.ErrJobStatusExpired) {
		rec, _, rerr := s.deps.Jobs.Job(ctx, j.id)
		if rerr == nil && rec.GetEnded() != nil {
			// Its end was relayed already (by an earlier poll or the queue); SharePoint has just
			// forgotten the job since.
			s.log.InfoContext(ctx, "job ended, then left SharePoint", "job", j.id, "err", err)
			return "ended", nil
		}
	}
	switch v := stage.Verdict(err); {
	case v.Class == bus.ClassThrottled:
		return "throttled", err
	case errors.Is(err, spo.ErrJobNotFound):
		if token == "" && s.deps.Now().Sub(j.since) < s.cfg.NotFoundGrace {
			// Just created: SharePoint may not show the job yet.
			return "empty", &again{why: whyNotYet}
		}
		return "failed", s.markFailed(ctx, j.id, fmt.Sprintf(
			"SharePoint no longer knows job %s (job not found, %d) after cursor %q: its remaining events and manifests cannot be read; resubmit its spec",
			j.id, spo.CodeJobNotFound, token), false)
	case errors.Is(err, spo.ErrJobStatusExpired):
		return "failed", s.markFailed(ctx, j.id, fmt.Sprintf(
			"the status of job %s expired at SharePoint (%d) before its JobEnd was read (cursor %q): later events and manifests are lost; resubmit its spec",
			j.id, spo.CodeJobStatusExpired, token), false)
	case v.Class == bus.ClassPermanent && isOurs(err):
		// Our credentials or permissions, not the job: say so on the job and in /readyz, keep its
		// state, and poll again later (not counted): fixing the configuration resumes every job,
		// where a dead letter would have failed them all.
		reason := fmt.Sprintf("GetMigrationJobProgress of job %s refused: %v", j.id, err)
		s.refusedAt.Store(s.deps.Now().UnixNano())
		s.log.ErrorContext(ctx, "SharePoint refuses the relay's credentials", "job", j.id, "err", err)
		if _, uerr := s.deps.Jobs.Fire(ctx, j.id, jobstore.Note(reason)); uerr != nil && !errors.Is(uerr, jobstore.ErrRefused) {
			return "error", uerr
		}
		return "refused", &again{why: whyRefused}
	case v.Class == bus.ClassPermanent:
		// A 500 is never retried: SharePoint says the call cannot succeed.
		return "failed", s.markFailed(ctx, j.id, fmt.Sprintf("GetMigrationJobProgress of job %s failed permanently: %v", j.id, err), false)
	default:
		// Transient trouble (already retried in this poll): poll again at the normal pace rather
		// than use up the message's failures and stop following a live job.
		s.log.WarnContext(ctx, "poll failed, next poll as usual", "job", j.id, "err", err)
		return "error", &again{why: whyTransient}
	}
}

// isOurs reports a refusal that is about this service's credentials or permissions.
func isOurs(err error) bool {
	var tok *spo.TokenError
	return errors.Is(err, spo.ErrUnauthorized) || errors.Is(err, spo.ErrAccessDenied) || errors.As(err, &tok)
}

// statusFallback ends a long-silent job whose status is None: SharePoint no longer runs it and no
// JobEnd came. It reports whether it ended the job; errors of the status call are only logged
// (the call is being retired by SharePoint and is only a fallback).
func (s *Stage) statusFallback(ctx context.Context, j job) (bool, error) {
	st, err := stage.Call(ctx, s.sp, j.site, func(ctx context.Context) (spo.JobState, error) {
		return s.sp.Client.GetMigrationJobStatus(ctx, j.site, j.id)
	})
	if err != nil {
		s.log.InfoContext(ctx, "status fallback unavailable", "job", j.id, "err", err)
		return false, nil
	}
	if st != spo.JobNone {
		return false, nil
	}
	silent := s.deps.Now().Sub(j.since).Round(time.Second)
	if perr := s.markFailed(ctx, j.id, fmt.Sprintf(
		"no JobEnd: GetMigrationJobStatus is None after %s without a new event; treating job %s as ended without its end", silent, j.id), true); !isPermanent(perr) {
		return false, perr
	}
	return true, nil
}

func isPermanent(err error) bool {
	var p *bus.Permanent
	return errors.As(err, &p)
}
