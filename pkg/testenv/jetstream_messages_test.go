package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/testenv"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func TestMessagesReadsAWorkQueueBySubject(t *testing.T) {
	e := testenv.StartJetStream(t)
	ctx := context.Background()
	for _, s := range []struct{ plan, spec string }{{"a", "1"}, {"b", "2"}, {"a", "3"}} {
		if _, err := bus.Publish(ctx, e.JS, topology.SpecSubject(s.plan), &amrpipev1.JobSpec{SpecId: s.spec}, s.spec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bus.Publish(ctx, e.JS, topology.DLQSubject("planner"), &amrpipev1.DeadLetter{Reason: "bad"}, "planner/x/1"); err != nil {
		t.Fatal(err)
	}
	got := testenv.Messages(t, context.Background(), e.JS, topology.StreamSpecs, topology.SpecSubject("a"), func() *amrpipev1.JobSpec { return &amrpipev1.JobSpec{} })
	if len(got) != 2 || got[0].GetSpecId() != "1" || got[1].GetSpecId() != "3" {
		t.Fatalf("specs of plan a = %v", got)
	}
	if raw := e.Messages(t, topology.StreamSpecs, topology.SpecSubject("b")); len(raw) != 1 || raw[0].Header.Get("Nats-Msg-Id") != "2" {
		t.Fatalf("raw messages of plan b = %v", raw)
	}
	if dl := e.DeadLetters(t, "planner"); len(dl) != 1 || dl[0].GetReason() != "bad" {
		t.Fatalf("dead letters = %v", dl)
	}
	if dl := e.DeadLetters(t, "parser"); len(dl) != 0 {
		t.Fatalf("another stage's dead letters: %v", dl)
	}
}

func TestWaitSettledWaitsForTheConsumer(t *testing.T) {
	e := testenv.StartJetStream(t)
	ctx := context.Background()
	if _, err := bus.Publish(ctx, e.JS, topology.SpecSubject("a"), &amrpipev1.JobSpec{SpecId: "1"}, "1"); err != nil {
		t.Fatal(err)
	}
	cons, err := topology.BindConsumer(ctx, e.JS, topology.ConsumerSubmitter)
	if err != nil {
		t.Fatal(err)
	}
	acked := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		batch, err := cons.Fetch(1)
		if err != nil {
			acked <- err
			return
		}
		for m := range batch.Messages() {
			err = m.DoubleAck(ctx)
		}
		acked <- err
	}()
	start := time.Now()
	e.WaitSettled(t, topology.StreamSpecs, 10*time.Second)
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("WaitSettled returned after %s, before the message was fetched", waited)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
}
