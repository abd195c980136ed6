package submitter

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/stage"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// A spec's way to its outcome, one compare-and-set at a time on its amr_submissions entry
// (jobstore.UpdateSubmission); see the package documentation for the rules.

const (
	// claimLease is how long a delivery holding a spec keeps other deliveries of it waiting while
	// it prepares and makes a create call: longer than one call (-sp-timeout, 2 minutes by
	// default, plus throttling waits). A call still running when it ends is taken for one with an
	// unknown outcome, never made again blindly.
	claimLease = 5 * time.Minute
	// maxSteps bounds the steps one delivery takes (claim, create, settle; a few conflicts).
	maxSteps = 8
	// maxAmbiguous is how many create calls with an unknown outcome a spec may have: the first,
	// and one more after the reconcile window found no job.
	maxAmbiguous = 2
)

// errAgain: the spec's submission changed under the step; read it again.
var errAgain = errors.New("the spec's submission changed")

// delivery is one handling of a spec message.
type delivery struct {
	s     *Stage
	spec  *amrpipev1.JobSpec
	owner string // names this delivery in the claim
	log   *slog.Logger
}

// handle submits one spec (see the package documentation for the steps).
func (s *Stage) handle(ctx context.Context, msg jetstream.Msg) error {
	spec := &amrpipev1.JobSpec{}
	if err := bus.Decode(msg, spec); err != nil {
		return err
	}
	if err := checkSpec(spec); err != nil {
		return &bus.Permanent{Reason: sas.Redact(fmt.Sprintf("spec %q: %v", spec.GetSpecId(), err))}
	}
	d := &delivery{s: s, spec: spec, owner: rand.Text(), log: s.log.With("spec_id", spec.GetSpecId(), "plan_id", spec.GetPlanId())}
	for step := range maxSteps {
		sub, err := s.deps.Jobs.Submission(ctx, spec.GetSpecId())
		if err != nil {
			return err
		}
		if jobstore.HasOutcome(sub) {
			if step == 0 {
				d.log.Info("spec submitted before; making sure it is recorded and announced")
			}
			return s.announce(ctx, spec.GetSpecId(), sub, d.log)
		}
		if err := d.step(ctx, sub); !errors.Is(err, errAgain) {
			return err
		}
	}
	return &bus.Retryable{Err: fmt.Errorf("spec %s: its submission kept changing", spec.GetSpecId())}
}

// step takes the spec one step further from a submission without outcome: claims it, makes the
// create call, waits for or settles the job of a call with an unknown outcome, or gives up.
func (d *delivery) step(ctx context.Context, sub *amrpipev1.Submission) error {
	if sub == nil {
		return d.claim(ctx)
	}
	c := sub.GetClaim()
	if c == nil {
		return &bus.Permanent{Reason: "stored submission has no outcome"}
	}
	if c.GetFoundJobId() != "" {
		return d.settleFound(ctx, c.GetFoundJobId())
	}
	now := d.s.deps.Now()
	held := c.GetOwner() != d.owner && c.GetLeaseUntil().AsTime().After(now)
	last := lastAttempt(sub)
	switch last.GetOutcome() {
	case amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_CALLING:
		if held {
			return d.wait(c.GetLeaseUntil().AsTime())
		}
		return d.ambiguous(ctx, last, "the submitter making the call stopped, or overran its claim, before the outcome was stored")
	case amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_AMBIGUOUS:
		waited := now.Sub(c.GetAmbiguousSince().AsTime())
		if window := d.s.cfg.ReconcileWindow; waited < window {
			return &bus.Later{After: min(d.s.cfg.ReconcileInterval, window-waited)}
		}
		if n := countAmbiguous(sub); n >= maxAmbiguous {
			return d.giveUp(ctx, sub, n)
		}
		d.log.Warn("no job of the create call with an unknown outcome appeared in the manifest container; creating the spec's job once more",
			"waited", waited.Round(time.Second), "attempt", last.GetNumber())
		d.s.m.reconciled.WithLabelValues("recreated").Inc()
		return d.create(ctx, sub)
	default:
		if held {
			return d.wait(c.GetLeaseUntil().AsTime())
		}
		return d.create(ctx, sub)
	}
}

// wait hands the message back until another delivery's claim ends (or the next look at it).
func (d *delivery) wait(until time.Time) error {
	return &bus.Later{After: max(min(until.Sub(d.s.deps.Now()), d.s.cfg.ReconcileInterval), 10*time.Millisecond)}
}

// claim stores the spec's claim unless another delivery stored something first.
func (d *delivery) claim(ctx context.Context) error {
	_, err := d.s.deps.Jobs.UpdateSubmission(ctx, d.spec.GetSpecId(), func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
		if cur != nil {
			return nil, jobstore.ErrNoChange
		}
		return &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Claim{Claim: &amrpipev1.SpecClaim{
			Owner: d.owner, LeaseUntil: timestamppb.New(d.s.deps.Now().Add(claimLease))}}}, nil
	})
	if err != nil {
		return err
	}
	return errAgain
}

// create makes one create call for the spec, recorded on its claim before it is made.
func (d *delivery) create(ctx context.Context, sub *amrpipev1.Submission) error {
	s, spec := d.s, d.spec
	key, err := s.jobKey(ctx, spec.GetSpecId())
	if err != nil {
		return err
	}
	defer clear(key)
	req, err := s.request(ctx, spec, key)
	if err != nil {
		return err
	}
	seen := len(sub.GetAttempts())
	number, started := uint32(seen)+1, s.deps.Now()
	info, err := d.call(ctx, req, number, seen)
	if err == nil {
		return d.settle(ctx, &amrpipev1.SubmittedJob{
			JobId: info.JobID, Spec: spec, Container: s.account.Container, Queue: s.account.Queue, Encrypted: key != nil,
			ChangeToken: info.CurrentChangeToken, Submitted: timestamppb.New(s.deps.Now()),
		}, number, amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_ACCEPTED, "")
	}
	if errors.Is(err, errAgain) {
		return errAgain
	}
	if reason, ok := ambiguous(err); ok {
		return d.ambiguous(ctx, &amrpipev1.CreateAttempt{Number: number, Started: timestamppb.New(started)}, reason)
	}
	if errors.Is(err, spo.ErrChangeTokenExpired) && spec.GetStartChangeToken() != "" {
		d.log.Warn("SharePoint rejected the change token; re-planning the spec's lists in full", "err", err)
		s.m.replans.Inc()
		won, err := s.deps.Jobs.PutSubmission(ctx, spec.GetSpecId(), &amrpipev1.Submission{
			Outcome: &amrpipev1.Submission_Replan{Replan: replan(spec, s.deps.Now())}})
		if err != nil {
			return err
		}
		return s.announce(ctx, spec.GetSpecId(), won, d.log)
	}
	return err
}

// call makes the create call through the tenant host's budget (a 429/503 pauses every replica
// and is tried again: SharePoint refused it). Before each HTTP request the attempt is recorded
// on the claim (CALLING), by compare-and-set: only one delivery can make it. A failure that shows
// no job was created (SharePoint's error answer, a request that never left) removes the record;
// any other failure is returned for the caller to record as ambiguous. Nothing here retries a
// call whose outcome is unknown. Once on its way, a call is not cancelled (it may create a job
// all the same): it runs on a context detached from the handler's, bounded by -sp-timeout.
func (d *delivery) call(ctx context.Context, req spo.ReadJobRequest, number uint32, seen int) (spo.ReadJobInfo, error) {
	s, spec := d.s, d.spec
	method := "CreateSPAsyncReadJob"
	if spec.GetMulti() {
		method = "CreateSPAsyncReadJobWithMultiUrl"
	}
	sp := s.deps.SharePoint.WithRetries(0, 0)
	return stage.Call(ctx, sp, spec.GetSiteUrl(), func(ctx context.Context) (spo.ReadJobInfo, error) {
		var info spo.ReadJobInfo
		if err := d.begin(ctx, number, seen); err != nil {
			return info, err
		}
		cctx := context.WithoutCancel(ctx)
		d.log.Info("submitting spec", "method", method, "attempt", number, "site", spec.GetSiteUrl(), "urls", len(spec.GetUrls()),
			"encrypted", len(req.EncryptionKey) > 0, "incremental", spec.GetStartChangeToken() != "")
		start := time.Now()
		var err error
		if spec.GetMulti() {
			info, err = sp.Client.CreateSPAsyncReadJobWithMultiUrl(cctx, spec.GetSiteUrl(), spec.GetUrls(), req)
		} else {
			info, err = sp.Client.CreateSPAsyncReadJob(cctx, spec.GetSiteUrl(), req)
		}
		outcome := "accepted"
		if err != nil {
			outcome = stage.Verdict(err).Class.String()
		}
		s.m.create.WithLabelValues(method, outcome).Observe(time.Since(start).Seconds())
		if err == nil {
			d.log.Info("SharePoint accepted spec", "job_id", info.JobID, "method", method, "attempt", number)
			s.m.submitted.WithLabelValues(method).Inc()
			return info, nil
		}
		d.log.Info("create call failed", "method", method, "attempt", number, "class", outcome, "err", err)
		if _, unknown := ambiguous(err); !unknown {
			if aerr := d.abandon(cctx, number); aerr != nil {
				// The attempt stays recorded as on its way: it will be taken for ambiguous.
				d.log.Warn("could not record that the create call created no job", "attempt", number, "err", aerr)
			}
		}
		return info, err
	})
}

// begin records attempt number as on its way, if the claim is as the step saw it (seen attempts,
// no job found) and no other delivery holds it; else errAgain.
func (d *delivery) begin(ctx context.Context, number uint32, seen int) error {
	now := d.s.deps.Now()
	_, err := d.update(ctx, func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
		c := cur.GetClaim()
		if c == nil || c.GetFoundJobId() != "" || len(cur.GetAttempts()) != seen ||
			c.GetOwner() != d.owner && c.GetLeaseUntil().AsTime().After(now) {
			return nil, errAgain
		}
		next := proto.Clone(cur).(*amrpipev1.Submission)
		next.GetClaim().Owner, next.GetClaim().LeaseUntil = d.owner, timestamppb.New(now.Add(claimLease))
		next.Attempts = append(next.Attempts, &amrpipev1.CreateAttempt{Number: number, Started: timestamppb.New(now),
			Outcome: amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_CALLING})
		return next, nil
	})
	return err
}

// abandon removes attempt number (it created no job) and releases the claim.
func (d *delivery) abandon(ctx context.Context, number uint32) error {
	_, err := d.update(ctx, func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
		last := lastAttempt(cur)
		if cur.GetClaim() == nil || last.GetNumber() != number || last.GetOutcome() != amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_CALLING {
			return nil, jobstore.ErrNoChange
		}
		next := proto.Clone(cur).(*amrpipev1.Submission)
		next.Attempts = next.Attempts[:len(next.Attempts)-1]
		next.GetClaim().LeaseUntil = timestamppb.New(d.s.deps.Now())
		return next, nil
	})
	return err
}

// ambiguous records that attempt's outcome is unknown: the spec is marked for the reconciler
// first (so its key is tried on unknown job folders even if what follows fails), then the attempt
// and the claim say so. The message comes back after -reconcile-interval.
func (d *delivery) ambiguous(ctx context.Context, attempt *amrpipev1.CreateAttempt, reason string) error {
	s := d.s
	// The attempt is stored: record it even while the handler is being cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	now := s.deps.Now()
	if err := s.deps.Jobs.MarkAmbiguous(ctx, &amrpipev1.AmbiguousSpec{SpecId: d.spec.GetSpecId(), Since: attempt.GetStarted(),
		Until: timestamppb.New(now.Add(s.cfg.OrphanWatch))}); err != nil {
		return err
	}
	_, err := d.update(ctx, func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
		if cur.GetClaim() == nil {
			return nil, jobstore.ErrNoChange
		}
		next := proto.Clone(cur).(*amrpipev1.Submission)
		a := findAttempt(next, attempt.GetNumber())
		if a == nil || a.GetOutcome() != amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_CALLING {
			return nil, jobstore.ErrNoChange // recorded by another delivery
		}
		a.Outcome, a.Ended, a.Reason = amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_AMBIGUOUS, timestamppb.New(now), reason
		next.GetClaim().AmbiguousSince, next.GetClaim().LeaseUntil = timestamppb.New(now), timestamppb.New(now)
		return next, nil
	})
	if err != nil {
		return err
	}
	s.m.ambiguous.Inc()
	d.log.Warn("create call outcome unknown: looking for its job in the manifest container before anything else",
		"attempt", attempt.GetNumber(), "reason", reason, "window", s.cfg.ReconcileWindow)
	return &bus.Later{After: s.cfg.ReconcileInterval}
}

// settleFound stores the job the reconciler found for the spec as its outcome.
func (d *delivery) settleFound(ctx context.Context, jobID string) error {
	sub, err := d.s.deps.Jobs.Submission(ctx, d.spec.GetSpecId())
	if err != nil {
		return err
	}
	var last *amrpipev1.CreateAttempt
	for _, a := range sub.GetAttempts() {
		if a.GetOutcome() == amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_AMBIGUOUS || a.GetOutcome() == amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_CALLING {
			last = a
		}
	}
	submitted := sub.GetClaim().GetFound()
	var number uint32
	if last != nil {
		submitted, number = last.GetStarted(), last.GetNumber()
	}
	d.log.Info("settling the spec with the job found for its create call with an unknown outcome", "job_id", jobID, "attempt", number)
	d.s.m.reconciled.WithLabelValues("found").Inc()
	// The create call's CurrentChangeToken is lost with its answer; the spec's list tokens, read
	// while planning, stand in for it when the job completes.
	return d.settle(ctx, &amrpipev1.SubmittedJob{
		JobId: jobID, Spec: d.spec, Container: d.s.account.Container, Queue: d.s.account.Queue, Encrypted: true, Submitted: submitted,
	}, number, amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_FOUND, "")
}

// giveUp ends the spec failed after maxAmbiguous create calls with an unknown outcome and no job
// found for either within the window.
func (d *delivery) giveUp(ctx context.Context, sub *amrpipev1.Submission, n int) error {
	var reasons []string
	for _, a := range sub.GetAttempts() {
		if a.GetOutcome() == amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_AMBIGUOUS {
			reasons = append(reasons, fmt.Sprintf("attempt %d: %s", a.GetNumber(), a.GetReason()))
		}
	}
	reason := fmt.Sprintf("%d create calls had an unknown outcome (%s) and no job of the spec appeared in the manifest container within %s; "+
		"given up without a job: resubmit the plan (a job of these calls found later is recorded as an orphan and its manifests deleted)",
		n, strings.Join(reasons, "; "), d.s.cfg.ReconcileWindow)
	d.s.m.reconciled.WithLabelValues("failed").Inc()
	if _, err := d.s.deps.Jobs.PutSubmission(ctx, d.spec.GetSpecId(), &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Failed{Failed: reason}}); err != nil {
		return err
	}
	d.log.Error("spec given up after create calls with an unknown outcome", "reason", reason)
	return &bus.Permanent{Reason: reason}
}

// settle stores the spec's job (the attempt's outcome with it) unless another outcome was stored
// meanwhile (which then stands), and records and announces what is stored.
func (d *delivery) settle(ctx context.Context, job *amrpipev1.SubmittedJob, number uint32, outcome amrpipev1.AttemptOutcome, reason string) error {
	s, specID := d.s, d.spec.GetSpecId()
	// The job exists now: the outcome must be stored even while the handler is being cancelled.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	now := s.deps.Now()
	won, err := d.update(sctx, func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
		if jobstore.HasOutcome(cur) {
			return nil, jobstore.ErrNoChange
		}
		next := &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Job{Job: job}, Orphans: cur.GetOrphans()}
		for _, a := range cur.GetAttempts() {
			a = proto.Clone(a).(*amrpipev1.CreateAttempt)
			if a.GetNumber() == number {
				a.Outcome, a.JobId, a.Reason = outcome, job.GetJobId(), cmp.Or(a.GetReason(), reason)
				if a.Ended == nil {
					a.Ended = timestamppb.New(now)
				}
			}
			next.Attempts = append(next.Attempts, a)
		}
		return next, nil
	})
	if err != nil {
		d.log.Error("could not store the spec's outcome; the next delivery looks for its job", "job_id", job.GetJobId(), "err", err)
		return err
	}
	if mine, theirs := job.GetJobId(), won.GetJob().GetJobId(); mine != theirs {
		d.log.Warn("another delivery stored the spec's outcome first; this job is orphaned (the sweeper finds and cleans it)",
			"job_id", mine, "kept_job_id", theirs)
	}
	return s.announce(sctx, specID, won, d.log)
}

// update is UpdateSubmission of the spec, retried briefly when the store fails (losing what it
// records can orphan a job).
func (d *delivery) update(ctx context.Context, fn func(*amrpipev1.Submission) (*amrpipev1.Submission, error)) (*amrpipev1.Submission, error) {
	for attempt := 0; ; attempt++ {
		sub, err := d.s.deps.Jobs.UpdateSubmission(ctx, d.spec.GetSpecId(), fn)
		if err == nil || errors.Is(err, errAgain) || attempt == 5 {
			return sub, err
		}
		if serr := backoff.Sleep(ctx, backoff.Delay(200*time.Millisecond, 5*time.Second, attempt)); serr != nil {
			return nil, fmt.Errorf("%w (last: %w)", serr, err)
		}
	}
}

func lastAttempt(sub *amrpipev1.Submission) *amrpipev1.CreateAttempt {
	if n := len(sub.GetAttempts()); n > 0 {
		return sub.GetAttempts()[n-1]
	}
	return nil
}

func findAttempt(sub *amrpipev1.Submission, number uint32) *amrpipev1.CreateAttempt {
	i := slices.IndexFunc(sub.GetAttempts(), func(a *amrpipev1.CreateAttempt) bool { return a.GetNumber() == number })
	if i < 0 {
		return nil
	}
	return sub.GetAttempts()[i]
}

func countAmbiguous(sub *amrpipev1.Submission) int {
	n := 0
	for _, a := range sub.GetAttempts() {
		if a.GetOutcome() == amrpipev1.AttemptOutcome_ATTEMPT_OUTCOME_AMBIGUOUS {
			n++
		}
	}
	return n
}
