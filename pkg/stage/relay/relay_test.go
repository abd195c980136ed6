package relay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/relay"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
)

// storage is the Azurite all tests of the package share.
var storage *testenv.Azurite

func TestMain(m *testing.M) { os.Exit(testenv.RunWithAzurite(m, &storage)) }

const pollInterval = 200 * time.Millisecond

// runRelay starts a progress-relay on its own runtime (a replica), reading the given report queue
// too unless it is "".
func runRelay(t *testing.T, e *testenv.World, queue string, mod func(*relay.Config)) (*svc.Runtime, func()) {
	return runRelayWaiting(t, e, queue, 0, mod)
}

// runRelayWaiting is runRelay with a -max-throttle-wait (0: the default).
func runRelayWaiting(t *testing.T, e *testenv.World, queue string, throttleWait time.Duration, mod func(*relay.Config)) (*svc.Runtime, func()) {
	t.Helper()
	cfg := relay.Config{PollInterval: pollInterval, QueuedPollInterval: pollInterval, QueuePollInterval: pollInterval,
		QueueInterval: 50 * time.Millisecond, QueueVisibility: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	deps := e.Deps(t, relay.Def(), func(c *stage.Config) {
		c.Storage.Queue = queue
		if throttleWait > 0 {
			c.MaxThrottleWait = throttleWait
		}
	})
	s, err := relay.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return deps.Runtime, testenv.RunStage(t, s.Run)
}

// logIDs are the event ids of a job's progress log, in order.
func logIDs(t *testing.T, log []string) []string {
	t.Helper()
	ids := make([]string, len(log))
	for i, l := range log {
		ev, err := amrevent.DecodeEvent([]byte(l))
		if err != nil {
			t.Fatalf("log entry %d: %v", i, err)
		}
		ids[i] = amrevent.EventID(ev)
	}
	return ids
}

func relayedIDs(events []*amrpipev1.RelayedEvent) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.GetEventId()
	}
	return ids
}

// waitEnded waits until the relay has settled the job for good (its poll message is gone).
func waitEnded(t *testing.T, e *testenv.World) {
	t.Helper()
	e.NATS.WaitSettled(t, topology.StreamJobs, 30*time.Second)
}

func job(t *testing.T, ctx context.Context, e *testenv.World, id string) *amrpipev1.JobRecord {
	t.Helper()
	rec, _, err := e.Store.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func announced(t *testing.T, log []string) []string {
	t.Helper()
	var files []string
	for _, l := range log {
		ev, err := amrevent.DecodeEvent([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if up := ev.GetFinishManifestFileUpload(); up != nil {
			_, file, _ := strings.Cut(up.GetManifestFileName(), "/")
			files = append(files, file)
		}
	}
	return files
}

func TestRelaysTheProgressLogOnceInOrder(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	rt, _ := runRelay(t, e, "", nil)
	j := e.CreateJob(t, ctx, testenv.JobOptions{})
	e.Submit(t, ctx, j)

	log := e.Log(t, ctx, j)
	waitEnded(t, e)
	events := e.Events(t, ctx, j.ID)
	if got, want := relayedIDs(events), logIDs(t, log); !slices.Equal(got, want) {
		t.Fatalf("relayed %d events %v,\nwant the %d of the log in order %v", len(got), got, len(want), want)
	}
	for i, ev := range events {
		if ev.GetSource() != amrpipev1.Source_SOURCE_PROGRESS_API || ev.GetSequence() != uint64(i+1) || ev.GetSpecId() != j.SpecID {
			t.Errorf("event %d: source %v sequence %d spec %q; want the progress API, %d, %s", i, ev.GetSource(), ev.GetSequence(), ev.GetSpecId(), i+1, j.SpecID)
		}
	}
	rec := job(t, ctx, e, j.ID)
	if rec.GetState() != amrpipev1.JobState_JOB_STATE_ENDED || !rec.GetJobEndSeen() || rec.GetEnded() == nil || rec.GetStarted() == nil {
		t.Errorf("record after the job: state %v, job_end_seen %v, started %v, ended %v", rec.GetState(), rec.GetJobEndSeen(), rec.GetStarted(), rec.GetEnded())
	}
	if want := announced(t, log); !slices.Equal(rec.GetFilesAnnounced(), want) || len(want) < 9 {
		t.Errorf("files announced %v, want %v (the package's files, split manifests included)", rec.GetFilesAnnounced(), want)
	}
	if rec.GetObjectsProcessed() == 0 || rec.GetObjectsProcessed() != rec.GetExpectedObjects() {
		t.Errorf("objects %d of %d expected", rec.GetObjectsProcessed(), rec.GetExpectedObjects())
	}
	if dl := e.NATS.DeadLetters(t, topology.StageRelay); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
	if n := testenv.Counter(t, rt, "amr_relay_events_total", map[string]string{"source": "progress_api"}); n != float64(len(log)) {
		t.Errorf("amr_relay_events_total{source=progress_api} = %v, want %d", n, len(log))
	}
}

// TestFollowsMoreJobsThanMaxAckPending: a live job waits in a message schedule, not in the
// consumer's pending list, so a relay whose consumer takes 3 messages at a time follows 12 jobs
// to their end (the poll timers used to be pending messages: 9 of 12 would never be polled).
func TestFollowsMoreJobsThanMaxAckPending(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	spec, err := topology.Consumer(topology.ConsumerRelay)
	if err != nil {
		t.Fatal(err)
	}
	spec.Config.MaxAckPending = 3
	if _, err := e.NATS.JS.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config); err != nil {
		t.Fatal(err)
	}
	jobs := make([]testenv.Job, 12)
	for i := range jobs {
		jobs[i] = e.CreateJob(t, ctx, testenv.JobOptions{})
		e.Submit(t, ctx, jobs[i])
	}
	rt, _ := runRelay(t, e, "", func(c *relay.Config) { c.Concurrency = 3 })
	waitEnded(t, e)
	for _, j := range jobs {
		rec := job(t, ctx, e, j.ID)
		if !rec.GetEndConfirmed() || len(e.Events(t, ctx, j.ID)) != len(e.Log(t, ctx, j)) {
			t.Errorf("job %s: end confirmed %v, %d of %d events relayed", j.ID, rec.GetEndConfirmed(), len(e.Events(t, ctx, j.ID)), len(e.Log(t, ctx, j)))
		}
	}
	if n := testenv.Counter(t, rt, "amr_relay_polls_total", map[string]string{"outcome": "ended"}); n != float64(len(jobs)) {
		t.Errorf("%v jobs confirmed ended, want %d", n, len(jobs))
	}
}

func TestRestartedRelayResumesFromCursor(t *testing.T) {
	if testing.Short() {
		t.Skip("follows a job of several seconds")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	// Each package file takes 300 ms to upload: a job of a few seconds to stop the relay in.
	e.Faults(t, server.Rule{Job: "slow-upload", Delay: 300 * time.Millisecond})
	_, stopFirst := runRelay(t, e, "", nil)
	j := e.CreateJob(t, ctx, testenv.JobOptions{})
	e.Submit(t, ctx, j)

	testenv.Eventually(t, 20*time.Second, "some events relayed", func() bool { return len(e.Events(t, ctx, j.ID)) >= 3 })
	stopFirst()
	before := len(e.Events(t, ctx, j.ID))
	cursor, err := e.Store.Cursor(ctx, j.ID)
	if err != nil || cursor == "" {
		t.Fatalf("no cursor saved by the stopped relay: %q %v", cursor, err)
	}

	rt, _ := runRelay(t, e, "", nil)
	log := e.Log(t, ctx, j)
	waitEnded(t, e)
	if before >= len(log) {
		t.Fatalf("the job's %d events were all relayed before the restart; nothing was resumed", len(log))
	}
	if got, want := relayedIDs(e.Events(t, ctx, j.ID)), logIDs(t, log); !slices.Equal(got, want) {
		t.Fatalf("after a restart at event %d relayed %v,\nwant the log once in order %v", before, got, want)
	}
	// Resumed at the cursor: the second relay never saw an event the first had relayed.
	if d := testenv.Counter(t, rt, "amr_relay_duplicates_total", nil); d != 0 {
		t.Errorf("the restarted relay met %v duplicates: it did not resume from cursor %s", d, cursor)
	}
	if n := testenv.Counter(t, rt, "amr_relay_events_total", nil); int(n) != len(log)-before {
		t.Errorf("the restarted relay published %v events, want the %d after the first's %d", n, len(log)-before, before)
	}
}

func TestQueueAndProgressAPIRelayEachEventOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	const queue = "events-in-phases"
	// The job waits postponed for a while: time for the queue alone to relay its first events.
	e.Faults(t, server.Rule{Job: "postponed", Delay: 1500 * time.Millisecond})
	j := e.CreateJob(t, ctx, testenv.JobOptions{Queue: queue})
	e.Record(t, ctx, j)

	// 1. Only the queue: the job is recorded but its poll message not published yet.
	_, stopQueueOnly := runRelay(t, e, queue, nil)
	testenv.Eventually(t, 20*time.Second, "the queue to relay JobQueued and JobPostponed", func() bool { return len(e.Events(t, ctx, j.ID)) >= 2 })
	stopQueueOnly()
	// 2. Only the progress API, from the start of the log.
	e.Submit(t, ctx, j)
	_, stopPoller := runRelay(t, e, "", nil)
	log := e.Log(t, ctx, j)
	waitEnded(t, e)
	stopPoller()
	// 3. Both: the queue still holds every event after the first two; all are duplicates now.
	// Each message is read once: a visibility longer than any handling on a busy machine, so
	// none reappears to be counted twice.
	rt, _ := runRelay(t, e, queue, func(c *relay.Config) { c.QueueVisibility = 30 * time.Second })
	testenv.Eventually(t, 20*time.Second, "the queue to be read to the end", func() bool { return queueLen(t, ctx, e, queue) == 0 })

	events := e.Events(t, ctx, j.ID)
	if got, want := relayedIDs(events), logIDs(t, log); !sameSet(got, want) {
		t.Fatalf("relayed %d events %v,\nwant each of the log's %d once %v", len(got), got, len(want), want)
	}
	bySource := map[amrpipev1.Source]int{}
	for _, ev := range events {
		bySource[ev.GetSource()]++
	}
	if bySource[amrpipev1.Source_SOURCE_QUEUE] < 2 || bySource[amrpipev1.Source_SOURCE_PROGRESS_API] < 2 {
		t.Errorf("events by source %v: want both sources used", bySource)
	}
	if n := testenv.Counter(t, rt, "amr_relay_events_total", nil); n != 0 {
		t.Errorf("the last relay published %v events; all had been published", n)
	}
	// The queue's JobEnd is left to the progress API, the authoritative source of ends.
	ends := endEvents(log)
	if n := testenv.Counter(t, rt, "amr_relay_queue_messages_total", map[string]string{"outcome": "duplicate"}); int(n) != len(log)-bySource[amrpipev1.Source_SOURCE_QUEUE]-ends {
		t.Errorf("the last relay found %v duplicates in the queue, want the %d events the queue had not relayed", n, len(log)-bySource[amrpipev1.Source_SOURCE_QUEUE]-ends)
	}
	if n := testenv.Counter(t, rt, "amr_relay_queue_messages_total", map[string]string{"outcome": "deferred"}); int(n) != ends {
		t.Errorf("the last relay deferred %v ends to the progress API, want %d", n, ends)
	}
}

// queueLen is the number of messages in a queue, visible or not.
func queueLen(t *testing.T, ctx context.Context, e *testenv.World, queue string) int64 {
	t.Helper()
	qc, err := e.Account(t, queue).QueueClient(queue)
	if err != nil {
		t.Fatal(err)
	}
	props, err := qc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return *props.ApproximateMessagesCount
}

func TestQueueAndProgressAPIAtOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	const queue = "events-at-once"
	rt, _ := runRelay(t, e, queue, nil)
	j := e.CreateJob(t, ctx, testenv.JobOptions{Queue: queue})
	e.Submit(t, ctx, j)
	log := e.Log(t, ctx, j)
	waitEnded(t, e)
	testenv.Eventually(t, 20*time.Second, "every queue message handled", func() bool { return queueLen(t, ctx, e, queue) == 0 })
	events := e.Events(t, ctx, j.ID)
	if got, want := relayedIDs(events), logIDs(t, log); !sameSet(got, want) {
		t.Fatalf("relayed %v,\nwant each of the log once %v", got, want)
	}
	published := testenv.Counter(t, rt, "amr_relay_events_total", nil)
	suppressed := testenv.Counter(t, rt, "amr_relay_duplicates_total", nil)
	// Every event is seen twice but the queue's JobEnd, which is left to the progress API.
	if ends := endEvents(log); int(published) != len(log) || int(suppressed) != len(log)-ends {
		t.Errorf("published %v and suppressed %v of %d events seen twice each (%d ends once)", published, suppressed, len(log), ends)
	}
}

// endEvents counts the events of a progress log that end a job.
func endEvents(log []string) int {
	n := 0
	for _, l := range log {
		for _, name := range []string{`"Event":"JobEnd"`, `"Event":"JobCancelled"`, `"Event":"JobFatalError"`} {
			if strings.Contains(l, name) {
				n++
			}
		}
	}
	return n
}

func sameSet(got, want []string) bool {
	a, b := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestThrottledPollsWaitRetryAfter(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	// Every pause is handed back to JetStream (the path a long Retry-After takes in production).
	rt, _ := runRelayWaiting(t, e, "", time.Millisecond, nil)
	j := e.CreateJob(t, ctx, testenv.JobOptions{})
	e.Faults(t, server.Rule{Method: "GetMigrationJobProgress", Status: http.StatusTooManyRequests, RetryAfter: "1", Times: 3})
	e.Submit(t, ctx, j)
	waitEnded(t, e) // the relay alone meets the 429s
	log := e.Log(t, ctx, j)

	if got, want := relayedIDs(e.Events(t, ctx, j.ID)), logIDs(t, log); !slices.Equal(got, want) {
		t.Fatalf("relayed %v, want %v", got, want)
	}
	if dl := e.NATS.DeadLetters(t, topology.StageRelay); len(dl) != 0 {
		t.Fatalf("throttling dead-lettered: %v", dl[0].GetReason())
	}
	var calls []testenv.Request
	for _, r := range e.Requests() {
		if r.Method == "GetMigrationJobProgress" {
			calls = append(calls, r)
		}
	}
	throttled := 0
	for i, r := range calls {
		if r.Status != http.StatusTooManyRequests {
			continue
		}
		throttled++
		if i+1 < len(calls) && calls[i+1].At.Sub(r.At) < 900*time.Millisecond {
			t.Errorf("call %d came %s after a 429 with Retry-After: 1", i+1, calls[i+1].At.Sub(r.At))
		}
	}
	if throttled != 3 {
		t.Errorf("%d progress calls were throttled, want 3", throttled)
	}
	if n := testenv.Counter(t, rt, "amr_relay_polls_total", map[string]string{"outcome": "throttled"}); n < 1 {
		t.Errorf("no poll was rescheduled as throttled (%v)", n)
	}
}

func TestPermanentProgressErrorsEndTheFollowing(t *testing.T) {
	t.Parallel()
	failed := amrpipev1.JobState_JOB_STATE_FAILED
	tests := []struct {
		name   string
		fault  server.Rule
		state  amrpipev1.JobState
		reason string
	}{
		{"job not found", server.Rule{Job: "not-found"}, failed, "no longer knows job"},
		{"status expired", server.Rule{Job: "expire-status"}, failed, "expired at SharePoint"},
		{"HTTP 500", server.Rule{Method: "GetMigrationJobProgress", Status: http.StatusInternalServerError, Times: 1}, failed, "failed permanently"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			e := testenv.StartWorld(t, storage, nil)
			e.Faults(t, tt.fault)
			j := e.CreateJob(t, ctx, testenv.JobOptions{})
			if tt.fault.Job != "" {
				// Let the job end (and vanish or expire) before its first poll.
				testenv.Eventually(t, 20*time.Second, "the job to end", func() bool {
					_, err := e.SP.GetMigrationJobProgress(ctx, j.Site, j.ID, "0")
					return err != nil
				})
			}
			// The job is gone before its first poll: no grace for a job SharePoint might not show yet.
			runRelay(t, e, "", func(c *relay.Config) { c.NotFoundGrace = time.Millisecond })
			first := len(e.Requests())
			e.Submit(t, ctx, j)
			waitEnded(t, e)

			rec := job(t, ctx, e, j.ID)
			if rec.GetState() != tt.state || !strings.Contains(rec.GetLastError(), tt.reason) {
				t.Errorf("record: state %v, last error %q; want %v with %q", rec.GetState(), rec.GetLastError(), tt.state, tt.reason)
			}
			dl := e.NATS.DeadLetters(t, topology.StageRelay)
			// The first poll is the job's first schedule, delivered on its due subject.
			if len(dl) != 1 || !strings.Contains(dl[0].GetReason(), tt.reason) || dl[0].GetSubject() != topology.DueSubject(j.ID) {
				t.Fatalf("dead letters %v; want the job's message with a reason containing %q", dl, tt.reason)
			}
			polls := 0
			for _, r := range e.Requests()[first:] {
				if r.Method == "GetMigrationJobProgress" && r.Status != http.StatusOK {
					polls++
				}
			}
			if polls != 1 {
				t.Errorf("%d failed progress calls, want exactly 1 (never retried)", polls)
			}
		})
	}
}

// TestRefusedCredentialsKeepTheJob: a 403 is about the relay's own permissions, not the job: the
// job is not failed and its poll not dead-lettered (fixing the configuration resumes every job);
// the job notes the refusal and the relay reports itself not ready.
func TestRefusedCredentialsKeepTheJob(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	e.Faults(t, server.Rule{Method: "GetMigrationJobProgress", Status: http.StatusForbidden, Times: 2})
	j := e.CreateJob(t, ctx, testenv.JobOptions{})
	rt, _ := runRelay(t, e, "", nil)
	e.Submit(t, ctx, j)
	testenv.Eventually(t, 20*time.Second, "the refusal noted", func() bool {
		return strings.Contains(job(t, ctx, e, j.ID).GetLastError(), "refused")
	})
	if err := rt.Ready(ctx); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Ready = %v, want not ready for the refused credentials", err)
	}
	waitEnded(t, e) // the refusals passed: the job is followed to its end
	if rec := job(t, ctx, e, j.ID); rec.GetState() != amrpipev1.JobState_JOB_STATE_ENDED || !rec.GetEndConfirmed() {
		t.Errorf("record %v; want ended and confirmed, not failed", rec)
	}
	if dl := e.NATS.DeadLetters(t, topology.StageRelay); len(dl) != 0 {
		t.Errorf("dead letters %v; a refusal of our credentials must not dead-letter the job", dl)
	}
}

func TestQueueForgeriesAndPoisonChangeNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	const queue = "events-poison"
	key := bytes.Repeat([]byte{0x5a}, 32)
	known := testenv.Job{ID: "6c1b0c1e-2b1a-4d5e-9f10-0a0b0c0d0e0f", SpecID: "spec-poison", Site: e.SimURL + testenv.Site, Container: "poison", Key: key}
	e.PutKey(t, ctx, known.SpecID, key)
	e.Record(t, ctx, known)
	plainJob := testenv.Job{ID: "7d2c0c1e-2b1a-4d5e-9f10-0a0b0c0d0e0f", SpecID: "spec-plain", Site: e.SimURL + testenv.Site, Container: "poison"}
	e.Record(t, ctx, plainJob)
	unknown := "0f0e0d0c-0b0a-4010-9f5e-4d1a2b1e0c1b"
	// A finished job: its authentic late messages are deleted unread, its forgeries dead-lettered.
	finished := testenv.Job{ID: "8e3d0c1e-2b1a-4d5e-9f10-0a0b0c0d0e0f", SpecID: "spec-finished", Site: e.SimURL + testenv.Site, Container: "poison", Key: key}
	e.PutKey(t, ctx, finished.SpecID, key)
	e.Record(t, ctx, finished)
	if _, err := e.Store.Fire(ctx, finished.ID, jobstore.EndSeen(time.Now(), nil), jobstore.EndConfirmed(), jobstore.Completed()); err != nil {
		t.Fatal(err)
	}

	event := func(jobID, name string) []byte {
		return []byte(`{"Event":"` + name + `","JobId":"` + jobID + `","Time":"12/04/2019 01:47:45.938","CorrelationId":"c-` + name + `"}`)
	}
	upload := func(jobID, name string) []byte {
		return []byte(`{"Event":"FinishManifestFileUpload","JobId":"` + jobID + `","Time":"12/04/2019 01:47:45.938","ManifestFileName":"` + name + `"}`)
	}
	envelopeOf := func(t *testing.T, envJob string, k, plain []byte) []byte {
		iv := bytes.Repeat([]byte{1}, 16)
		ct, err := aescbc.Encrypt(k, iv, plain)
		if err != nil {
			t.Fatal(err)
		}
		env, err := json.Marshal(map[string]string{"Label": "Encrypted", "JobId": envJob,
			"IV": base64.StdEncoding.EncodeToString(iv), "Content": base64.StdEncoding.EncodeToString(ct)})
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	envelope := func(t *testing.T, k, plain []byte) []byte { return envelopeOf(t, known.ID, k, plain) }
	messages := []struct {
		name   string
		text   string
		reason string // "" when relayed
	}{
		{"neither JSON nor base64", "%%% not a message", "undecodable report-queue message"},
		{"encrypted under another key", b64(envelope(t, bytes.Repeat([]byte{0x11}, 32), event(known.ID, "JobStart"))), "decrypt message of job"},
		{"no job id", b64([]byte(`{"Event":"JobStart","JobId":"../x"}`)), "no job id GUID"},
		{"a job nobody recorded", b64(event(unknown, "JobStart")), "another tool's job"},
		// Forged: anyone with the queue's Add SAS can post these.
		{"a plain JobEnd for an encrypted job", b64(event(known.ID, "JobEnd")), "not SharePoint's"},
		{"a plain upload with a hostile name for an encrypted job", b64(upload(known.ID, "../x")), "not SharePoint's"},
		{"an envelope of one job carrying another's event", b64(envelopeOf(t, known.ID, key, event(plainJob.ID, "JobStart"))), "carries an event of job"},
		{"a 5 KB event name", b64(envelope(t, key, event(known.ID, strings.Repeat("JobEnd", 900)))), "over its bounds"},
		{"a name outside SharePoint's set", b64(envelope(t, key, event(known.ID, "AmrpipeJobChanged"))), "outside SharePoint's documented set"},
		{"a hostile name for a plaintext job", b64(upload(plainJob.ID, "../x")), "outside the folder"},
		{"good", b64(envelope(t, key, event(known.ID, "JobQueued"))), ""},
		// A plaintext job's JobEnd cannot be authenticated: it is left to the progress API.
		{"a plain JobEnd for a plaintext job", b64(event(plainJob.ID, "JobEnd")), ""},
		{"a late JobEnd of a finished job", b64(envelopeOf(t, finished.ID, key, event(finished.ID, "JobEnd"))), ""},
		// A finished job's messages are still authenticated: a forgery is still dead-lettered.
		{"a late plain upload of a finished job", b64(upload(finished.ID, "Manifest9.xml")), "not SharePoint's"},
	}
	qc, err := e.Account(t, queue).QueueClient(queue)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range messages {
		if _, err := qc.EnqueueMessage(ctx, m.text, nil); err != nil {
			t.Fatal(err)
		}
	}
	rt, _ := runRelay(t, e, queue, func(c *relay.Config) { c.QueueMaxAttempts = 2 })
	testenv.Eventually(t, 20*time.Second, "the queue to be emptied", func() bool { return queueLen(t, ctx, e, queue) == 0 })

	dls := e.NATS.DeadLetters(t, topology.StageRelay)
	for _, m := range messages {
		var found *amrpipev1.DeadLetter
		for _, dl := range dls {
			if string(dl.GetPayload()) == m.text {
				found = dl
			}
		}
		switch {
		case m.reason == "" && found != nil:
			t.Errorf("%s: dead-lettered: %s", m.name, found.GetReason())
		case m.reason != "" && (found == nil || !strings.Contains(found.GetReason(), m.reason)):
			t.Errorf("%s: dead letter %v, want one with a reason containing %q", m.name, found, m.reason)
		}
	}
	if len(dls) != len(messages)-3 {
		t.Errorf("%d dead letters, want %d", len(dls), len(messages)-3)
	}
	if n := testenv.Counter(t, rt, "amr_relay_queue_messages_total", map[string]string{"outcome": "finished"}); n != 1 {
		t.Errorf("%v messages of the finished job deleted unread, want 1", n)
	}
	if evs := e.Events(t, ctx, finished.ID); len(evs) != 0 {
		t.Errorf("relayed %v for a finished job", evs)
	}
	// Nothing forged changed a job: none ended, failed, or expects a file.
	for _, id := range []string{known.ID, plainJob.ID} {
		rec := job(t, ctx, e, id)
		if rec.GetJobEndSeen() || rec.GetEnded() != nil || rec.GetState() == amrpipev1.JobState_JOB_STATE_FAILED || len(rec.GetFilesAnnounced()) > 0 {
			t.Errorf("job %s changed by forged messages: %v", id, rec)
		}
	}
	if n := testenv.Counter(t, rt, "amr_relay_unauthenticated_messages_total", nil); n != 3 {
		t.Errorf("%v unauthenticated messages counted, want 3", n)
	}
	for _, dl := range dls {
		if strings.Contains(dl.String(), base64.StdEncoding.EncodeToString(key)) || bytes.Contains(dl.GetPayload(), key) {
			t.Errorf("dead letter %q carries the job key", dl.GetReason())
		}
	}
	events := e.Events(t, ctx, known.ID)
	if len(events) != 1 || events[0].GetEvent().GetType() != amrpipev1.EventType_EVENT_TYPE_JOB_QUEUED || events[0].GetSource() != amrpipev1.Source_SOURCE_QUEUE {
		t.Fatalf("relayed %v; want the one good JobQueued from the queue", events)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestSilentJobWithStatusNoneEnds uses a stand-in SharePoint whose job never logs anything and
// whose status is None: the fallback ends it as failed instead of polling it forever.
func TestSilentJobWithStatusNoneEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var statusCalls atomic.Int32
	sp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json;odata=nometadata")
		if strings.HasSuffix(r.URL.Path, "/GetMigrationJobStatus") {
			statusCalls.Add(1)
			_, _ = io.WriteString(w, `{"value":0}`)
			return
		}
		_, _ = io.WriteString(w, `{"Logs":[],"NextToken":"0"}`)
	}))
	defer sp.Close()
	e := testenv.StartWorld(t, storage, nil)
	deps := e.Deps(t, relay.Def(), nil)
	deps.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } // two hours of silence
	s, err := relay.New(relay.Config{PollInterval: pollInterval, QueuedPollInterval: pollInterval, StatusFallback: time.Hour}, deps)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunStage(t, s.Run)
	j := testenv.Job{ID: "3f2504e0-4f89-41d3-9a0c-0305e82c3301", SpecID: "spec-silent", Site: sp.URL + "/sites/x", Container: "c"}
	e.Submit(t, ctx, j)
	waitEnded(t, e)
	rec := job(t, ctx, e, j.ID)
	if rec.GetState() != amrpipev1.JobState_JOB_STATE_FAILED || rec.GetEnded() == nil || !strings.Contains(rec.GetLastError(), "no JobEnd") {
		t.Fatalf("record %v; want failed and ended, no JobEnd", rec)
	}
	if statusCalls.Load() != 1 {
		t.Errorf("%d status calls, want 1", statusCalls.Load())
	}
	if dl := e.NATS.DeadLetters(t, topology.StageRelay); len(dl) != 0 {
		t.Errorf("dead letters %v: the fallback end is not a failure of the message", dl)
	}
}
