package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// ErrLive is returned by Forget for a job that is not final: its state is still needed.
var ErrLive = errors.New("job is not final")

// Forget removes what was kept to follow a final job: its progress cursor (amr_cursors), every
// seen-event marker of it (amr_seen, keys "<jobID>.<eventID>") and what parse progress a crash
// left (amr_parse_progress, keys "<jobID>.<file>"), each with one purge request by subject on the
// bucket's stream, which leaves no delete markers behind. The record, plannings, submission and
// summary stay (topology.JobRecordTTL), and so does the job's wrapped key (amr_keys, until
// topology.KeyLifetime): late report-queue messages of the job are still authenticated with it
// (a forgery is dead-lettered, SharePoint's own late message dropped), and the submitter's
// sweeper recognises a late orphan job of the spec by manifests that decrypt with it. A job
// without a record (expired, or never recorded) is forgotten too; a job that is not final is
// refused with ErrLive, since forgetting its markers would relay its events again. Forget is
// idempotent; the parser calls it once it completed a job (docs/pipeline.md, "Lifetimes").
func (s *Store) Forget(ctx context.Context, jobID string) error {
	if err := topology.CheckToken(jobID); err != nil {
		return fmt.Errorf("forget job: %w", err)
	}
	rec, err := s.settledRecord(ctx, jobID)
	switch {
	case errors.Is(err, ErrNotFound):
		rec = nil
	case err != nil:
		return fmt.Errorf("forget job %s: %w", jobID, err)
	case !Final(rec):
		return fmt.Errorf("forget job %s (%s): %w", jobID, StateName(rec.GetState()), ErrLive)
	}
	purges := []struct{ bucket, subject string }{
		{topology.BucketCursors, kvSubject(topology.BucketCursors, jobID)},
		{topology.BucketSeen, kvSubject(topology.BucketSeen, jobID) + ".>"},
		{topology.BucketParseProgress, kvSubject(topology.BucketParseProgress, jobID) + ".>"},
	}
	for _, p := range purges {
		st, err := s.js.Stream(ctx, topology.KVStream(p.bucket))
		if err != nil {
			return fmt.Errorf("forget job %s: bucket %s: %w", jobID, p.bucket, err)
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(p.subject)); err != nil {
			return fmt.Errorf("forget job %s: purge %s: %w", jobID, p.subject, err)
		}
	}
	return nil
}

// settledRecord reads a job's record for Forget. A key-value read may be answered by a replica
// that has not applied the write that made the job final (on a cluster, right after the parser's
// Completed), so a record that is not final yet is read again a few times before Forget refuses.
func (s *Store) settledRecord(ctx context.Context, jobID string) (*amrpipev1.JobRecord, error) {
	for i := 0; ; i++ {
		rec, _, err := s.Job(ctx, jobID)
		if err != nil || Final(rec) || i == 4 {
			return rec, err
		}
		select {
		case <-ctx.Done():
			return rec, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kvSubject is the subject a key of a bucket is stored under.
func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// validKey reports a key JetStream's key-value store accepts (so never a wildcard).
func validKey(k string) bool {
	return k != "" && !strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".") &&
		strings.IndexFunc(k, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-/_=.", r))
		}) < 0
}
