package jobstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

const job = "0b6c1f0e-8d35-4c0a-9f8a-6f1a5d2e7c11"

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, env *testenv.JetStream) *jobstore.Store {
	t.Helper()
	_, js := env.Connect(t) // each store its own connection, like separate replicas
	s, err := jobstore.Open(context.Background(), js, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUpdateNoLostUpdates(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	stores := []*jobstore.Store{open(t, env), open(t, env)}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for range each {
				if _, err := stores[w%2].Update(ctx, job, func(r *amrpipev1.JobRecord) error {
					r.Records++
					r.FilesParsed = append(r.FilesParsed, "m")
					return nil
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rec, _, err := stores[0].Job(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetRecords() != writers*each || len(rec.GetFilesParsed()) != writers*each {
		t.Fatalf("records = %d, files = %d after %d updates: updates were lost", rec.GetRecords(), len(rec.GetFilesParsed()), writers*each)
	}
	if rec.GetJobId() != job || !rec.GetUpdated().AsTime().Equal(t0) {
		t.Fatalf("job id %q updated %v", rec.GetJobId(), rec.GetUpdated().AsTime())
	}
}

func TestUpdateSkipsAndFails(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	s := open(t, env)
	if _, _, err := s.Job(ctx, job); !errors.Is(err, jobstore.ErrNotFound) {
		t.Fatalf("Job of an unknown id: %v", err)
	}
	if _, err := s.Update(ctx, job, func(r *amrpipev1.JobRecord) error {
		r.State = amrpipev1.JobState_JOB_STATE_SUBMITTED
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, rev, err := s.Job(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	tests := []struct {
		name    string
		fnErr   error
		wantErr error
	}{
		{"ErrNoChange writes nothing", jobstore.ErrNoChange, nil},
		{"an error aborts", boom, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Update(ctx, job, func(r *amrpipev1.JobRecord) error {
				r.State = amrpipev1.JobState_JOB_STATE_FAILED
				return tt.fnErr
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			rec, rev2, err := s.Job(ctx, job)
			if err != nil {
				t.Fatal(err)
			}
			if rev2 != rev || rec.GetState() != amrpipev1.JobState_JOB_STATE_SUBMITTED {
				t.Fatalf("record changed: revision %d -> %d, state %v", rev, rev2, rec.GetState())
			}
		})
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := open(t, env)
	if _, err := s.Update(ctx, "job-a", func(r *amrpipev1.JobRecord) error { r.Records = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	changes, err := s.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	next := func() jobstore.JobChange {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no change")
			return jobstore.JobChange{}
		}
	}
	if c := next(); c.JobID != "job-a" || !c.Initial || c.Record.GetRecords() != 1 {
		t.Fatalf("first change %+v, want job-a's current record", c)
	}
	if c := next(); !c.Synced {
		t.Fatalf("second change %+v, want the synced marker", c)
	}
	if _, err := open(t, env).Update(ctx, "job-b", func(r *amrpipev1.JobRecord) error { r.Records = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.JobID != "job-b" || c.Initial || c.Record.GetRecords() != 7 {
		t.Fatalf("live change %+v, want job-b", c)
	}
	cancel()
	for range changes { // closed after cancel
	}
}

func TestCursor(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	s := open(t, env)
	if c, err := s.Cursor(ctx, job); err != nil || c != "" {
		t.Fatalf("cursor before any = %q, %v", c, err)
	}
	if err := s.PutCursor(ctx, job, "42"); err != nil {
		t.Fatal(err)
	}
	if c, err := open(t, env).Cursor(ctx, job); err != nil || c != "42" {
		t.Fatalf("cursor = %q, %v; want 42", c, err)
	}
}

func TestMarkSeenOnce(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	stores := []*jobstore.Store{open(t, env), open(t, env)}
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for i := range 10 { // the progress API and the queue see the same event on two replicas
		wg.Go(func() {
			first, err := stores[i%2].MarkSeen(ctx, job, "9f86d081884c7d659a2feaa0c55ad015")
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Fatalf("%d callers were first, want 1", firsts.Load())
	}
	if first, err := stores[0].MarkSeen(ctx, job, "another"); err != nil || !first {
		t.Fatalf("another event: first=%v err=%v", first, err)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	s := open(t, env)
	list := "{6B1C1F0E-8D35-4C0A-9F8A-6F1A5D2E7C11}"
	if _, _, err := s.Token(ctx, list); !errors.Is(err, jobstore.ErrNotFound) {
		t.Fatalf("token before any: %v", err)
	}
	want := &amrpipev1.StoredToken{ListId: list, Token: "1;3;6b1c;639000000000000000;1234", Issued: timestamppb.New(t0.Add(-61 * 24 * time.Hour)), JobId: job}
	if err := s.PutToken(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, age, err := s.Token(ctx, "6b1c1f0e-8d35-4c0a-9f8a-6f1a5d2e7c11")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) || age != 61*24*time.Hour {
		t.Fatalf("token %v age %s, want %v age 61 days", got, age, want)
	}
}

func TestPutKeyOnce(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	s := open(t, env)
	spec := "5d41402abc4b2a76b9719d911017c592"
	wrapped := func(n string, expires time.Time) *amrpipev1.WrappedKey {
		return &amrpipev1.WrappedKey{KekId: "k1", Nonce: []byte("n" + n), Ciphertext: []byte("c" + n), Expires: timestamppb.New(expires)}
	}
	first := wrapped("1", t0.Add(time.Hour))
	if stored, created, err := s.PutKey(ctx, spec, first); err != nil || !created || !proto.Equal(stored, first) {
		t.Fatalf("first PutKey: created=%v err=%v", created, err)
	}
	stored, created, err := open(t, env).PutKey(ctx, spec, wrapped("2", t0.Add(time.Hour)))
	if err != nil || created || !proto.Equal(stored, first) {
		t.Fatalf("second PutKey = %v created=%v err=%v; want the first key back", stored, created, err)
	}
	if got, err := s.Key(ctx, spec); err != nil || !proto.Equal(got, first) {
		t.Fatalf("Key = %v, %v", got, err)
	}
	if _, err := s.Key(ctx, "unknown"); !errors.Is(err, jobstore.ErrNotFound) {
		t.Fatalf("Key of an unknown spec: %v", err)
	}
	// An expired key is replaced: the spec is being submitted as a new job.
	other := "6d41402abc4b2a76b9719d911017c592"
	if _, _, err := s.PutKey(ctx, other, wrapped("3", t0.Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	fresh := wrapped("4", t0.Add(time.Hour))
	if stored, created, err := s.PutKey(ctx, other, fresh); err != nil || !created || !proto.Equal(stored, fresh) {
		t.Fatalf("PutKey over an expired key = %v created=%v err=%v; want the new key", stored, created, err)
	}
}
