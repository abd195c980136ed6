package parser

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// watch is the watchdog of jobs whose end was seen but whose files stopped coming: every
// WatchInterval it looks at the jobs not completed yet, and a job that has ended, still waits
// for announced files and has not changed for StallTimeout gets those files marked failed (with
// the reason) and is completed, failed. A job whose end is not seen yet is the relay's to follow;
// a file held up by throttling or a retry changes the job (or is settled) well within the
// timeout. A job with a ManifestReady still in AMR_MANIFESTS is not stalled either: its file is
// queued for the parser (which was down or behind, or waits for the file to be decrypted again).
// Every parser replica watches; the transitions are idempotent.
func (s *Stage) watch(ctx context.Context) error {
	for {
		if err := backoff.Sleep(ctx, s.cfg.WatchInterval); err != nil {
			return nil
		}
		if err := s.watchOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "watchdog", "err", err)
		}
	}
}

// watchOnce looks at every job once.
func (s *Stage) watchOnce(ctx context.Context) error {
	jobs, err := s.store.Jobs(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	for _, r := range jobs {
		waiting := jobstore.Waiting(r)
		if jobstore.Final(r) || !jobstore.Ended(r) || len(waiting) == 0 || now.Sub(r.GetUpdated().AsTime()) < s.cfg.StallTimeout {
			continue
		}
		if queued, err := s.queued(ctx, r.GetJobId()); err != nil || queued {
			if err != nil {
				return fmt.Errorf("job %s: %w", r.GetJobId(), err)
			}
			continue
		}
		if err := s.stalled(ctx, r, waiting, now.Sub(r.GetUpdated().AsTime())); err != nil {
			return fmt.Errorf("job %s: %w", r.GetJobId(), err)
		}
	}
	return nil
}

// queued reports whether AMR_MANIFESTS holds a ManifestReady of the job (a work queue: one stays
// until the parser acknowledges it).
func (s *Stage) queued(ctx context.Context, jobID string) (bool, error) {
	subject := topology.ManifestSubject(jobID)
	info, err := s.manifests.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return false, fmt.Errorf("look for queued files: %w", err)
	}
	return info.State.Subjects[subject] > 0, nil
}

// stalled fails the files a job still waits for and completes it.
func (s *Stage) stalled(ctx context.Context, r *amrpipev1.JobRecord, waiting []string, idle time.Duration) error {
	ts := make([]jobstore.Transition, 0, len(waiting))
	for _, f := range waiting {
		ts = append(ts, jobstore.FileFailed(f, fmt.Sprintf("%s: announced by SharePoint but not parsed %s after the job last changed (-stall-timeout)",
			f, idle.Round(time.Second))))
	}
	rec, err := s.store.Fire(ctx, r.GetJobId(), ts...)
	if err != nil && !errors.Is(err, jobstore.ErrRefused) {
		return err
	}
	s.metrics.stalled.Inc()
	s.log.WarnContext(ctx, "job stalled: its waiting files are failed", "job", r.GetJobId(), "files", strings.Join(waiting, ","),
		"idle", idle.Round(time.Second).String())
	return s.complete(ctx, rec)
}
