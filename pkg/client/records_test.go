package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

const vendor = "vendor"

var quiet = client.WithLogger(slog.New(slog.NewTextHandler(logOut(), nil)))

func logOut() io.Writer {
	if os.Getenv("CLIENT_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// publish puts the records [from, to) of a package file on AMR_RECORDS as one batch, under the
// message id the parser gives it (framing names the batch size, so two framings never share an id).
func publish(t *testing.T, js jetstream.JetStream, job, file string, from, to uint64, framing string) {
	t.Helper()
	b := &amrpipev1.RecordBatch{JobId: job, SourceFile: file}
	for seq := from; seq < to; seq++ {
		b.Records = append(b.Records, &amrpipev1.Record{JobId: job, SourceFile: file, Sequence: seq,
			ObjectId: fmt.Sprintf("%s-%d", file, seq), ObjectType: "SPFile", Body: &amrpipev1.Record_File{File: &amrpipev1.File{Name: "f.docx"}}})
	}
	id := fmt.Sprintf("%s/%s/%s/%d-%d", job, file, framing, from, to)
	if _, err := bus.Publish(context.Background(), js, topology.RecordSubject(job), b, id); err != nil {
		t.Fatal(err)
	}
}

// publishFile publishes a file's n records in batches of size.
func publishFile(t *testing.T, js jetstream.JetStream, job, file string, n, size uint64) {
	t.Helper()
	for from := uint64(0); from < n; from += size {
		publish(t, js, job, file, from, min(from+size, n), fmt.Sprintf("v1.n%d", size))
	}
}

// tally is what a handler received, by key.
type tally struct {
	mu  sync.Mutex
	got map[client.Key]int
}

func newTally() *tally { return &tally{got: map[client.Key]int{}} }

func (tl *tally) add(r *amrpipev1.Record) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.got[client.Key{JobID: r.GetJobId(), SourceFile: r.GetSourceFile(), Sequence: r.GetSequence()}]++
	return len(tl.got)
}

// check fails unless every record of files (job/file -> count) arrived exactly once.
func (tl *tally) check(t *testing.T, files map[[2]string]uint64) {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	want := 0
	for jf, n := range files {
		for seq := range n {
			k := client.Key{JobID: jf[0], SourceFile: jf[1], Sequence: seq}
			if c := tl.got[k]; c != 1 {
				t.Errorf("record %v handed over %d times, want once", k, c)
			}
		}
		want += int(n)
	}
	if len(tl.got) != want {
		t.Errorf("%d distinct records handed over, want %d", len(tl.got), want)
	}
}

func connect(t *testing.T, env *testenv.JetStream) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, env.Server.ClientURL(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func consumer(t *testing.T, c *client.Client, opts ...client.ConsumeOption) *client.Consumer {
	t.Helper()
	cons, err := c.Consumer(context.Background(), vendor, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cons
}

// runToEnd runs a consumer until the stream's end, within a minute.
func runToEnd(t *testing.T, cons *client.Consumer, h client.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cons.Run(ctx, h); err != nil {
		t.Fatal(err)
	}
}

// storedRecords is how many record batches AMR_RECORDS still holds: with interest retention, a
// batch stays until every declared consumer acknowledged it.
func storedRecords(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), topology.StreamRecords)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// TestResumeAfterRestartHandsOverNothingTwiceAndLosesNothing: a consumer stopped in the middle of
// the stream (in the middle of a batch) and started again in a new process hands every record
// over exactly once across both runs, including records published while it was stopped.
func TestResumeAfterRestartHandsOverNothingTwiceAndLosesNothing(t *testing.T) {
	env := testenv.StartJetStreamWith(t, topology.Options{Downstream: []string{vendor}})
	files := map[[2]string]uint64{}
	for _, job := range []string{"job-a", "job-b"} {
		for _, file := range []string{"Manifest.xml", "Manifest1.xml"} {
			publishFile(t, env.JS, job, file, 53, 5)
			files[[2]string{job, file}] = 53
		}
	}
	tl := newTally()

	first := connect(t, env)
	ctx, stop := context.WithCancel(context.Background())
	err := consumer(t, first, client.WithBatchSize(4)).Run(ctx, func(_ context.Context, r *amrpipev1.Record) error {
		if tl.add(r) == 77 { // in the middle of a batch, with fetched batches not started
			stop()
		}
		return nil
	})
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(tl.got); n < 77 || n >= 4*53 {
		t.Fatalf("first run handed over %d records, want a part", n)
	}

	publishFile(t, env.JS, "job-c", "Manifest.xml", 21, 5) // while no one reads
	files[[2]string{"job-c", "Manifest.xml"}] = 21

	second := connect(t, env)
	runToEnd(t, consumer(t, second, client.WithFollow(false)), func(_ context.Context, r *amrpipev1.Record) error {
		tl.add(r)
		return nil
	})
	tl.check(t, files)
	if n := storedRecords(t, env.JS); n != 0 {
		t.Errorf("AMR_RECORDS holds %d batches after the consumer read everything, want 0 (all acknowledged)", n)
	}
}

// TestBatchDeliveredAgainIsDeDuplicated: batches delivered again under other message ids (a
// re-parse after the duplicate window, with another framing; a missing batch republished after
// later ones) hand over no record twice, and are acknowledged.
func TestBatchDeliveredAgainIsDeDuplicated(t *testing.T) {
	env := testenv.StartJetStreamWith(t, topology.Options{Downstream: []string{vendor}})
	publish(t, env.JS, "job-a", "Manifest.xml", 10, 20, "v1.n10")
	publish(t, env.JS, "job-a", "Manifest.xml", 0, 10, "v1.n10") // the earlier batch, late
	publish(t, env.JS, "job-a", "Manifest.xml", 5, 15, "v1.n5")  // a re-parse framed otherwise
	publish(t, env.JS, "job-a", "Manifest.xml", 15, 25, "v1.n5") // overlaps, and five new
	tl := newTally()
	runToEnd(t, consumer(t, connect(t, env), client.WithFollow(false)), func(_ context.Context, r *amrpipev1.Record) error {
		tl.add(r)
		return nil
	})
	tl.check(t, map[[2]string]uint64{{"job-a", "Manifest.xml"}: 25})
	if n := storedRecords(t, env.JS); n != 0 {
		t.Errorf("AMR_RECORDS holds %d batches, want 0: a batch of repeats is acknowledged too", n)
	}
}

// TestHandlerErrorLeavesTheBatchUnacknowledged: a batch whose handler fails is not acknowledged
// (the stream keeps it) and is delivered again; records the handler had accepted are not handed
// over again, and a handler that never succeeds never lets the batch go.
func TestHandlerErrorLeavesTheBatchUnacknowledged(t *testing.T) {
	env := testenv.StartJetStreamWith(t, topology.Options{Downstream: []string{vendor}})
	publish(t, env.JS, "job-a", "Manifest.xml", 0, 10, "v1.n10")

	// A handler that always fails: the batch stays on the stream.
	c := connect(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	calls := 0
	err := consumer(t, c, client.WithRetryBase(100*time.Millisecond)).Run(ctx, func(context.Context, *amrpipev1.Record) error {
		calls++
		return errors.New("database is down")
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 2 {
		t.Fatalf("handler called %d times in 3 s, want the batch delivered again after the back-off", calls)
	}
	if n := storedRecords(t, env.JS); n != 1 {
		t.Fatalf("AMR_RECORDS holds %d batches after handler errors, want 1 (never acknowledged)", n)
	}

	// Failing once on record 6: the batch comes back, records 0-5 are not handed over again.
	publish(t, env.JS, "job-b", "Manifest.xml", 0, 10, "v1.n10")
	tl := newTally()
	failed := false
	runToEnd(t, consumer(t, connect(t, env), client.WithFollow(false), client.WithRetryBase(100*time.Millisecond)),
		func(_ context.Context, r *amrpipev1.Record) error {
			if r.GetSequence() == 6 && !failed {
				failed = true
				return errors.New("deadlock, try again")
			}
			tl.add(r)
			return nil
		})
	if !failed {
		t.Fatal("the handler never failed")
	}
	tl.check(t, map[[2]string]uint64{{"job-a", "Manifest.xml"}: 10, {"job-b", "Manifest.xml"}: 10})
	if n := storedRecords(t, env.JS); n != 0 {
		t.Errorf("AMR_RECORDS holds %d batches after the handler succeeded, want 0", n)
	}
}

// TestStopHandsABatchBackOnce: a consumer stopped while a failed batch waits for its back-off
// hands the batch back once, not into its own pull request again and again: each delivery counts,
// and the count sets the next run's back-off (CI once saw 8 extra deliveries make it minutes).
func TestStopHandsABatchBackOnce(t *testing.T) {
	env := testenv.StartJetStreamWith(t, topology.Options{Downstream: []string{vendor}})
	publish(t, env.JS, "job-a", "Manifest.xml", 0, 10, "v1.n10")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	// The back-off (200-400 ms) ends while the stopping run's pull request still waits.
	err := consumer(t, connect(t, env), client.WithRetryBase(400*time.Millisecond)).RunBatches(ctx, func(context.Context, *client.Batch) error {
		stop()
		return errors.New("database is down")
	})
	if err != nil {
		t.Fatal(err)
	}

	var delivered []uint64
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = consumer(t, connect(t, env), client.WithFollow(false)).RunBatches(rctx, func(_ context.Context, b *client.Batch) error {
		delivered = append(delivered, b.Delivered)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 1: failed; 2: came back while the first run stopped, handed back; 3: this run.
	if len(delivered) != 1 || delivered[0] > 3 {
		t.Fatalf("the next run saw the batch at deliveries %v, want one, the third at most", delivered)
	}
	if n := storedRecords(t, env.JS); n != 0 {
		t.Errorf("AMR_RECORDS holds %d batches after the second run, want 0", n)
	}
}

// TestUndeclaredConsumerIsRefused: the client never creates a consumer of its own; a name the
// topology did not declare, or a consumer configured otherwise, is refused with what to run.
func TestUndeclaredConsumerIsRefused(t *testing.T) {
	env := testenv.StartJetStream(t) // declares "downstream" only
	c := connect(t, env)
	ctx := context.Background()
	_, err := c.Consumer(ctx, "vendor-x")
	if !errors.Is(err, topology.ErrMissing) || !strings.Contains(err.Error(), "amrctl topology apply --downstream vendor-x") {
		t.Fatalf("undeclared consumer: %v, want ErrMissing telling to run amrctl topology apply --downstream vendor-x", err)
	}
	if _, err := env.JS.Stream(ctx, topology.StreamRecords); err != nil {
		t.Fatal(err)
	}
	s, _ := env.JS.Stream(ctx, topology.StreamRecords)
	lister := s.ListConsumers(ctx)
	for info := range lister.Info() {
		if info.Name == "vendor-x" {
			t.Fatal("the client created the consumer it refused")
		}
	}
	// A durable consumer made by hand, not as the topology declares one.
	if _, err := env.JS.CreateConsumer(ctx, topology.StreamRecords, jetstream.ConsumerConfig{Durable: "handmade",
		AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: topology.RecordSubject("*")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Consumer(ctx, "handmade"); !errors.Is(err, topology.ErrMismatch) || !strings.Contains(err.Error(), "--downstream handmade") {
		t.Fatalf("hand-made consumer: %v, want ErrMismatch", err)
	}
	if _, err := c.Consumer(ctx, "bad.name"); err == nil {
		t.Fatal("a consumer name with a dot was accepted")
	}
	if _, err := c.Consumer(ctx, topology.DefaultDownstream, client.WithJobs("job-a")); err == nil {
		t.Fatal("a job filter on a declared consumer was accepted")
	}
	if _, err := c.Consumer(ctx, topology.DefaultDownstream); err != nil {
		t.Fatalf("the declared default consumer: %v", err)
	}
}

// TestDeDuplicationForgetsAJobAfterItsSummary: memory is bounded: once a job's summary was seen
// and every batch up to it acknowledged, the consumer no longer remembers the job.
func TestDeDuplicationForgetsAJobAfterItsSummary(t *testing.T) {
	env := testenv.StartJetStreamWith(t, topology.Options{Downstream: []string{vendor}})
	publishFile(t, env.JS, "job-a", "Manifest.xml", 20, 5)
	publishFile(t, env.JS, "job-b", "Manifest.xml", 20, 5)
	if _, err := bus.Publish(context.Background(), env.JS, topology.DoneSubject("job-a"), &amrpipev1.JobSummary{JobId: "job-a", Records: 20}, "job-a"); err != nil {
		t.Fatal(err)
	}
	cons := consumer(t, connect(t, env))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tl := newTally()
	done := make(chan error, 1)
	go func() {
		done <- cons.Run(ctx, func(_ context.Context, r *amrpipev1.Record) error {
			tl.add(r)
			return nil
		})
	}()
	for {
		jobs, _ := cons.Remembered()
		tl.mu.Lock()
		n := len(tl.got)
		tl.mu.Unlock()
		if n == 40 && jobs == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d records handed over, %d jobs remembered; want 40 and job-b only", n, jobs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReaderFiltersJobsAndHoldsNothingBack: a reader reads the jobs asked for and acknowledges
// nothing, so the declared consumer still gets every record.
func TestReaderFiltersJobsAndHoldsNothingBack(t *testing.T) {
	env := testenv.StartJetStreamWith(t, topology.Options{Downstream: []string{vendor}})
	publishFile(t, env.JS, "job-a", "Manifest.xml", 12, 5)
	publishFile(t, env.JS, "job-b", "Manifest.xml", 12, 5)
	c := connect(t, env)
	r, err := c.Reader(context.Background(), client.WithJobs("job-b"), client.WithFollow(false))
	if err != nil {
		t.Fatal(err)
	}
	tl := newTally()
	runToEnd(t, r, func(_ context.Context, rec *amrpipev1.Record) error {
		tl.add(rec)
		return nil
	})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	tl.check(t, map[[2]string]uint64{{"job-b", "Manifest.xml"}: 12})
	if n := storedRecords(t, env.JS); n != 6 {
		t.Fatalf("AMR_RECORDS holds %d batches after a reader, want all 6", n)
	}
}

// TestSummariesAndIssues reads job summaries and SharePoint's per-object issues of a job.
func TestSummariesAndIssues(t *testing.T) {
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	for _, id := range []string{"job-a", "job-b"} {
		if _, err := bus.Publish(ctx, env.JS, topology.DoneSubject(id), &amrpipev1.JobSummary{JobId: id, Failed: id == "job-b"}, id); err != nil {
			t.Fatal(err)
		}
	}
	issue := &amrpipev1.JobIssue{ObjectType: "File", Url: "Shared Documents/a.docx", Id: "f1", ErrorCode: -2147024816, Message: "exists"}
	events := []*amrpipev1.RelayedEvent{
		{EventId: "e1", Event: &amrpipev1.MigrationEvent{RawName: "JobStart", JobId: "job-a", Payload: &amrpipev1.MigrationEvent_JobStart{JobStart: &amrpipev1.JobStart{}}}},
		{EventId: "e2", Event: &amrpipev1.MigrationEvent{RawName: "JobWarning", JobId: "job-a", Payload: &amrpipev1.MigrationEvent_JobWarning{JobWarning: issue}}},
		{EventId: "e3", Event: &amrpipev1.MigrationEvent{RawName: "JobError", JobId: "job-b", Payload: &amrpipev1.MigrationEvent_JobError{JobError: issue}}},
	}
	for _, e := range events {
		if _, err := bus.Publish(ctx, env.JS, topology.EventSubject(e.GetEvent().GetJobId(), e.GetEvent().GetRawName()), e, e.GetEventId()); err != nil {
			t.Fatal(err)
		}
	}
	c := connect(t, env)
	s, err := c.Summary(ctx, "job-b")
	if err != nil || !s.GetFailed() {
		t.Fatalf("Summary(job-b) = %v, %v", s, err)
	}
	if _, err := c.Summary(ctx, "job-z"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Summary of a job without one: %v, want ErrNotFound", err)
	}
	var ids []string
	if err := c.Summaries(ctx, false, func(_ context.Context, s *amrpipev1.JobSummary) error {
		ids = append(ids, s.GetJobId())
		return nil
	}); err != nil || strings.Join(ids, ",") != "job-a,job-b" {
		t.Fatalf("Summaries = %v, %v", ids, err)
	}
	issues, err := c.Issues(ctx, "job-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(issues) != 1 || issues[0].Event != client.EventJobWarning || issues[0].GetUrl() != "Shared Documents/a.docx" || issues[0].GetErrorCode() != -2147024816 {
		t.Fatalf("Issues(job-a) = %+v, want the one JobWarning", issues)
	}
	if _, err := c.PlanStatus(ctx, "no-such-plan"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("PlanStatus of an unknown plan: %v, want ErrNotFound", err)
	}
}
