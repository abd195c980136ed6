package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Messages returns the messages stored in a stream on one subject, oldest first. It reads them
// by sequence rather than through a consumer, so it also works on the work-queue streams, where
// the stages' durable consumers forbid any other.
func (e *JetStream) Messages(t testing.TB, stream, subject string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := e.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // acknowledged from a work queue, or deleted
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// WaitSettled waits until a work-queue stream holds no message, that is until its consumer has
// acknowledged or terminated (dead-lettered) every one, and fails the test after timeout.
func (e *JetStream) WaitSettled(t testing.TB, stream string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	s, err := e.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(timeout); ; {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			var left map[string]uint64
			if all, err := s.Info(ctx, jetstream.WithSubjectFilter(">")); err == nil {
				left = all.State.Subjects
			}
			t.Fatalf("%s: %d messages still unsettled after %s: %v", stream, info.State.Msgs, timeout, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DeadLetters returns a stage's dead letters.
func (e *JetStream) DeadLetters(t testing.TB, stage string) []*amrpipev1.DeadLetter {
	t.Helper()
	return Messages(t, context.Background(), e.JS, topology.StreamDLQ, topology.DLQSubject(stage), func() *amrpipev1.DeadLetter { return &amrpipev1.DeadLetter{} })
}
