package jobstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// followed gives a job what the submitter and the relay keep to follow it: a key, a cursor and
// seen-markers, and a record in state st.
func followed(t *testing.T, s *jobstore.Store, jobID, specID string, st amrpipev1.JobState) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Update(ctx, jobID, func(r *amrpipev1.JobRecord) error {
		r.State, r.Spec = st, &amrpipev1.JobSpec{SpecId: specID}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutKey(ctx, specID, &amrpipev1.WrappedKey{Ciphertext: []byte("sealed"), Expires: timestamppb.New(t0.Add(topology.KeyLifetime))}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCursor(ctx, jobID, "1764"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.MarkSeen(ctx, jobID, fmt.Sprintf("ev%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForget: a final job's cursor and seen-markers go (its key stays, for late messages and
// late orphans, until its lifetime), leaving no delete markers and
// nothing of another job touched; a live job is refused; an unknown job and a second call are
// fine; a job id that is no subject token is refused before any purge.
func TestForget(t *testing.T) {
	t.Parallel()
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	s := open(t, env)
	const other = "7d1a4c2e-0000-4c0a-9f8a-6f1a5d2e7c11"
	followed(t, s, job, "spec-done", amrpipev1.JobState_JOB_STATE_DONE)
	followed(t, s, other, "spec-live", amrpipev1.JobState_JOB_STATE_RUNNING)

	if err := s.Forget(ctx, other); !errors.Is(err, jobstore.ErrLive) {
		t.Fatalf("Forget of a running job = %v, want ErrLive", err)
	}
	for range 2 { // idempotent
		if err := s.Forget(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Key(ctx, "spec-done"); err != nil {
		t.Errorf("key after Forget: %v; it stays until its lifetime", err)
	}
	if c, err := s.Cursor(ctx, job); err != nil || c != "" {
		t.Errorf("cursor after Forget: %q, %v", c, err)
	}
	for i := range 5 {
		if seen, err := s.Seen(ctx, job, fmt.Sprintf("ev%d", i)); err != nil || seen {
			t.Errorf("seen-marker %d after Forget: %v, %v", i, seen, err)
		}
	}
	if rec, _, err := s.Job(ctx, job); err != nil || rec.GetState() != amrpipev1.JobState_JOB_STATE_DONE {
		t.Errorf("the record must stay: %v, %v", rec, err)
	}
	// The other job keeps everything, and the buckets hold nothing else: no delete markers.
	if _, err := s.Key(ctx, "spec-live"); err != nil {
		t.Errorf("other job's key: %v", err)
	}
	if seen, err := s.Seen(ctx, other, "ev3"); err != nil || !seen {
		t.Errorf("other job's seen-marker: %v, %v", seen, err)
	}
	for bucket, want := range map[string]uint64{topology.BucketSeen: 5, topology.BucketCursors: 1, topology.BucketKeys: 2} {
		st, err := env.JS.Stream(ctx, topology.KVStream(bucket))
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != want {
			t.Errorf("%s holds %d entries after Forget, want %d (the other job's; both keys)", bucket, info.State.Msgs, want)
		}
	}

	if err := s.Forget(ctx, "never-recorded"); err != nil {
		t.Errorf("Forget of a job without a record: %v", err)
	}
	for _, bad := range []string{"", "*", ">", "a.b"} {
		if err := s.Forget(ctx, bad); !errors.Is(err, topology.ErrBadToken) {
			t.Errorf("Forget(%q) = %v, want ErrBadToken", bad, err)
		}
	}
	if seen, err := s.Seen(ctx, other, "ev0"); err != nil || !seen {
		t.Fatalf("a refused Forget touched another job: %v, %v", seen, err)
	}
}
