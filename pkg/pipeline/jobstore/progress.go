package jobstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Seen reports whether an event of a job was marked with MarkSeen, without marking it. The
// progress-relay checks before it publishes and marks only after the publish succeeded, so that a
// crash between the two republishes (and the stream's duplicate window absorbs it) rather than
// losing the event.
func (s *Store) Seen(ctx context.Context, jobID, eventID string) (bool, error) {
	_, err := s.seen.Get(ctx, jobID+"."+eventID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read seen event %s of job %s: %w", eventID, jobID, err)
	}
	return true, nil
}

// CursorAt returns a job's nextToken and when it was stored (zero time before the first call). The
// relay stores a cursor only when it moved, so the time is that of the job's latest new event.
func (s *Store) CursorAt(ctx context.Context, jobID string) (string, time.Time, error) {
	e, err := s.cursors.Get(ctx, jobID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("get cursor of job %s: %w", jobID, err)
	}
	return string(e.Value()), e.Created(), nil
}
