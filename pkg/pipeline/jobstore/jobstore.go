// Package jobstore is typed access to the pipeline's key-value buckets: job records (changed
// only by the named transitions of the job lifecycle, lifecycle.go, each applied by
// compare-and-set; watchable), progress cursors, seen-event markers, change tokens, wrapped job
// keys, the planner's plannings, the submitter's submissions, and the status of a plan computed
// from them. The buckets are created by topology.Ensure.
package jobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Errors of the store.
var (
	// ErrNotFound is returned when a key has no value.
	ErrNotFound = errors.New("not found")
	// ErrNoChange may be returned by an Update function to leave the record as it is.
	ErrNoChange = errors.New("no change")
)

// Store reads and writes the buckets. It is safe for concurrent use.
type Store struct {
	jobs, cursors, seen, tokens, keys, plans, submissions jetstream.KeyValue
	js                                                    jetstream.JetStream
	now                                                   func() time.Time
	metrics                                               *transitionMetrics
}

// Open binds the buckets; now is the clock (nil: time.Now).
func Open(ctx context.Context, js jetstream.JetStream, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{now: now, js: js}
	for _, b := range []struct {
		name string
		kv   *jetstream.KeyValue
	}{
		{topology.BucketJobs, &s.jobs},
		{topology.BucketCursors, &s.cursors},
		{topology.BucketSeen, &s.seen},
		{topology.BucketTokens, &s.tokens},
		{topology.BucketKeys, &s.keys},
		{topology.BucketPlans, &s.plans},
		{topology.BucketSubmissions, &s.submissions},
	} {
		kv, err := js.KeyValue(ctx, b.name)
		if err != nil {
			return nil, fmt.Errorf("bind bucket %s: %w", b.name, err)
		}
		*b.kv = kv
	}
	return s, nil
}

// getProto reads key into m and returns its revision; ErrNotFound when absent or deleted.
func getProto(ctx context.Context, kv jetstream.KeyValue, key string, m proto.Message) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("%s %s: %w", kv.Bucket(), key, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("get %s %s: %w", kv.Bucket(), key, err)
	}
	if err := proto.Unmarshal(e.Value(), m); err != nil {
		return 0, fmt.Errorf("decode %s %s: %w", kv.Bucket(), key, err)
	}
	return e.Revision(), nil
}

// Job returns a job's record and its revision.
func (s *Store) Job(ctx context.Context, jobID string) (*amrpipev1.JobRecord, uint64, error) {
	rec := &amrpipev1.JobRecord{}
	rev, err := getProto(ctx, s.jobs, jobID, rec)
	if err != nil {
		return nil, 0, err
	}
	return rec, rev, nil
}

// maxUpdateAttempts bounds an Update's compare-and-set loop; each conflict means another writer
// made progress, so running out means heavy contention on one job, not a livelock.
const maxUpdateAttempts = 100

// update applies fn to the job's current record (a new record with only JobId set when there is
// none) and stores the result if nobody wrote in between, else reads again and repeats; so no
// concurrent update is lost. fn may run several times and must only change the record it gets;
// it returns ErrNoChange to write nothing. Updated is set to now. update returns the stored record.
// Only the lifecycle's transitions (Fire) call it: no stage writes a record's fields itself.
func (s *Store) update(ctx context.Context, jobID string, fn func(*amrpipev1.JobRecord) error) (*amrpipev1.JobRecord, error) {
	rec, err := casUpdate(ctx, s.jobs, jobID, "job "+jobID, func() *amrpipev1.JobRecord { return &amrpipev1.JobRecord{} },
		func(rec *amrpipev1.JobRecord) (*amrpipev1.JobRecord, error) {
			if rec == nil {
				rec = &amrpipev1.JobRecord{JobId: jobID}
			}
			if err := fn(rec); err != nil {
				return rec, err
			}
			rec.JobId = jobID
			rec.Updated = timestamppb.New(s.now())
			return rec, nil
		})
	return rec, err
}

// casUpdate applies fn to the value under key (nil when there is none) and stores what it returns
// if nobody wrote in between, else reads again and repeats, backing off a little so that N writers
// do not collide N times. fn may run several times; it returns ErrNoChange to write nothing (then
// casUpdate returns what fn returned with it). what names the value in errors.
func casUpdate[M proto.Message](ctx context.Context, kv jetstream.KeyValue, key, what string, newM func() M, fn func(M) (M, error)) (M, error) {
	var zero M
	for attempt := range maxUpdateAttempts {
		cur := newM()
		rev, err := getProto(ctx, kv, key, cur)
		if errors.Is(err, ErrNotFound) {
			cur, rev, err = zero, 0, nil
		}
		if err != nil {
			return zero, err
		}
		next, err := fn(cur)
		if errors.Is(err, ErrNoChange) {
			return next, nil
		}
		if err != nil {
			return zero, fmt.Errorf("update %s: %w", what, err)
		}
		data, err := proto.Marshal(next)
		if err != nil {
			return zero, fmt.Errorf("encode %s: %w", what, err)
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return zero, fmt.Errorf("store %s: %w", what, err)
		}
		if err := backoff.Sleep(ctx, backoff.Delay(time.Millisecond, 32*time.Millisecond, attempt)); err != nil {
			return zero, fmt.Errorf("update %s: %w", what, err)
		}
	}
	return zero, fmt.Errorf("update %s: %d conflicting writes in a row", what, maxUpdateAttempts)
}

// JobChange is one event of Watch.
type JobChange struct {
	JobID    string
	Record   *amrpipev1.JobRecord // nil when deleted or expired
	Revision uint64
	// Initial marks the current values delivered first; Synced marks the one change (without
	// JobID) that follows them, after which every change is live.
	Initial, Synced bool
}

// Watch streams the current record of one job (jobID) or of all jobs (""), then every change,
// until ctx ends; the channel is closed then.
func (s *Store) Watch(ctx context.Context, jobID string) (<-chan JobChange, error) {
	keys := jobID
	if keys == "" {
		keys = jetstream.AllKeys
	}
	w, err := s.jobs.Watch(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("watch jobs %s: %w", keys, err)
	}
	out := make(chan JobChange)
	go func() {
		defer close(out)
		defer func() { _ = w.Stop() }() // the watcher is gone with ctx either way
		initial := true
		for {
			var ch JobChange
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				ch = change(e, initial)
				if e == nil {
					initial = false
				}
			}
			select {
			case out <- ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func change(e jetstream.KeyValueEntry, initial bool) JobChange {
	if e == nil {
		return JobChange{Synced: true}
	}
	ch := JobChange{JobID: e.Key(), Revision: e.Revision(), Initial: initial}
	if e.Operation() == jetstream.KeyValuePut {
		rec := &amrpipev1.JobRecord{}
		if proto.Unmarshal(e.Value(), rec) == nil {
			ch.Record = rec
		}
	}
	return ch
}

// Cursor returns a job's GetMigrationJobProgress nextToken, "" before the first call.
func (s *Store) Cursor(ctx context.Context, jobID string) (string, error) {
	e, err := s.cursors.Get(ctx, jobID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("get cursor of job %s: %w", jobID, err)
	}
	return string(e.Value()), nil
}

// PutCursor stores a job's nextToken.
func (s *Store) PutCursor(ctx context.Context, jobID, next string) error {
	if _, err := s.cursors.PutString(ctx, jobID, next); err != nil {
		return fmt.Errorf("put cursor of job %s: %w", jobID, err)
	}
	return nil
}

// MarkSeen records an event of a job and reports whether this was the first time, whichever
// replica or source saw it: only the first publishes it.
func (s *Store) MarkSeen(ctx context.Context, jobID, eventID string) (first bool, err error) {
	_, err = s.seen.Create(ctx, jobID+"."+eventID, nil)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mark event %s of job %s: %w", eventID, jobID, err)
	}
	return true, nil
}

// TokenKey is the bucket key of a list id: lower case without braces, as SharePoint writes GUIDs
// both ways.
func TokenKey(listID string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(listID), "{}"))
}

// ScopedTokenKey is the bucket key of a list's token for one folder (scope, an absolute URL):
// the list's key, '.', and a hash of the folder's URL (lower case, no trailing slash), as URLs
// hold characters keys may not.
func ScopedTokenKey(listID, scope string) string {
	if scope == "" {
		return TokenKey(listID)
	}
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimRight(scope, "/"))))
	return TokenKey(listID) + ".f" + hex.EncodeToString(sum[:16])
}

// Token returns a list's stored change token and its age (now minus its issue time).
func (s *Store) Token(ctx context.Context, listID string) (*amrpipev1.StoredToken, time.Duration, error) {
	return s.ScopedToken(ctx, listID, "")
}

// ScopedToken returns the change token stored for one folder of a list (scope "": the whole
// list) and its age.
func (s *Store) ScopedToken(ctx context.Context, listID, scope string) (*amrpipev1.StoredToken, time.Duration, error) {
	tok := &amrpipev1.StoredToken{}
	if _, err := getProto(ctx, s.tokens, ScopedTokenKey(listID, scope), tok); err != nil {
		return nil, 0, err
	}
	return tok, s.now().Sub(tok.GetIssued().AsTime()), nil
}

// PutToken stores a list's change token, for its scope when it has one (after its job's summary
// was published).
func (s *Store) PutToken(ctx context.Context, tok *amrpipev1.StoredToken) error {
	data, err := proto.Marshal(tok)
	if err != nil {
		return fmt.Errorf("encode token of list %s: %w", tok.GetListId(), err)
	}
	if _, err := s.tokens.Put(ctx, ScopedTokenKey(tok.GetListId(), tok.GetScope()), data); err != nil {
		return fmt.Errorf("put token of list %s: %w", tok.GetListId(), err)
	}
	return nil
}

// PutKey stores the wrapped key of a job spec unless an unexpired one is stored already, and
// returns the stored one with created=false in that case. The submitter stores the key under the
// spec id before it calls SharePoint (the job id comes back only from that call); a retried
// submission of the same spec then reuses the first key, so a job SharePoint accepted on an
// attempt that looked failed can still be decrypted.
func (s *Store) PutKey(ctx context.Context, specID string, w *amrpipev1.WrappedKey) (stored *amrpipev1.WrappedKey, created bool, err error) {
	data, err := proto.Marshal(w)
	if err != nil {
		return nil, false, fmt.Errorf("encode key of spec %s: %w", specID, err)
	}
	for range maxUpdateAttempts {
		cur := &amrpipev1.WrappedKey{}
		rev, err := getProto(ctx, s.keys, specID, cur)
		switch {
		case errors.Is(err, ErrNotFound):
			_, err = s.keys.Create(ctx, specID, data)
		case err != nil:
			return nil, false, err
		case cur.GetExpires().IsValid() && s.now().Before(cur.GetExpires().AsTime()):
			return cur, false, nil
		default: // expired: a new job of this spec needs a new key
			_, err = s.keys.Update(ctx, specID, data, rev)
		}
		if err == nil {
			return w, true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return nil, false, fmt.Errorf("put key of spec %s: %w", specID, err)
		}
	}
	return nil, false, fmt.Errorf("put key of spec %s: %d conflicting writes in a row", specID, maxUpdateAttempts)
}

// Key returns the wrapped key of a job spec.
func (s *Store) Key(ctx context.Context, specID string) (*amrpipev1.WrappedKey, error) {
	w := &amrpipev1.WrappedKey{}
	if _, err := getProto(ctx, s.keys, specID, w); err != nil {
		return nil, err
	}
	return w, nil
}
