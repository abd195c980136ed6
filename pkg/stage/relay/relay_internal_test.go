package relay

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

const testJob = "1efa0a61-ec6e-4225-83fe-14196215476c"

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// wire builds one event's wire JSON for testJob, the way SharePoint writes it.
func wire(name string, kv ...string) string {
	var b strings.Builder
	b.WriteString(`{"Event":"` + name + `","JobId":"` + testJob + `","Time":"12/04/2019 01:47:45.938"`)
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(`,"` + kv[i] + `":"` + kv[i+1] + `"`)
	}
	b.WriteString("}")
	return b.String()
}

func decoded(t *testing.T, logs ...string) []event {
	t.Helper()
	out := make([]event, len(logs))
	for i, l := range logs {
		e, err := newEvent(testJob, []byte(l), uint64(i+1))
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		out[i] = e
	}
	return out
}

var (
	queued    = wire("JobQueued", "MigrationType", "AsyncRead")
	started   = wire("JobStart", "CorrelationId", "c1")
	progress  = wire("JobProgress", "ObjectsProcessed", "5", "TotalExpectedSPObjects", "10")
	manifest  = wire("FinishManifestFileUpload", "ManifestFileName", testJob+"/Manifest.xml")
	usergroup = wire("FinishManifestFileUpload", "ManifestFileName", testJob+"/UserGroup.xml", "CorrelationId", "c2")
	end       = wire("JobEnd", "ObjectsProcessed", "10", "TotalExpectedSPObjects", "10")
	fatal     = wire("JobFatalError", "ErrorCode", "-2147213196", "Message", "Operation canceled")
	cancelled = wire("JobCancelled", "CancelledByUser", "True")
)

// apply fires the transitions of a batch of events on r, as relay does through the job store.
func apply(r *amrpipev1.JobRecord, events []event, problems []string, sj *amrpipev1.SubmittedJob, now time.Time) bool {
	changed, _ := jobstore.Apply(r, now, transitions(r.GetJobId(), amrpipev1.Source_SOURCE_PROGRESS_API, events, problems, sj, now)...)
	return changed
}

func TestApplyFoldsEventsIntoTheRecord(t *testing.T) {
	tests := []struct {
		name      string
		start     amrpipev1.JobState
		logs      []string
		state     amrpipev1.JobState
		endSeen   bool
		ended     bool
		files     []string
		lastError string
		unchanged bool
	}{
		{name: "queued", logs: []string{queued}, state: amrpipev1.JobState_JOB_STATE_QUEUED},
		{name: "a whole job", logs: []string{queued, started, progress, manifest, usergroup, end},
			state: amrpipev1.JobState_JOB_STATE_ENDED, endSeen: true, ended: true, files: []string{"Manifest.xml", "UserGroup.xml"}},
		{name: "fatal error, then end", logs: []string{queued, started, manifest, fatal, end},
			state: amrpipev1.JobState_JOB_STATE_FAILED, endSeen: true, ended: true, files: []string{"Manifest.xml"}, lastError: "JobFatalError -2147213196"},
		{name: "fatal error without end yet", logs: []string{started, fatal},
			state: amrpipev1.JobState_JOB_STATE_FAILED, lastError: "Operation canceled"},
		{name: "cancelled", logs: []string{queued, cancelled},
			state: amrpipev1.JobState_JOB_STATE_FAILED, ended: true, lastError: "cancelled"},
		{name: "a file outside the job's folder fails the job",
			logs:  []string{started, wire("FinishManifestFileUpload", "ManifestFileName", "../"+testJob+"/Manifest.xml")},
			state: amrpipev1.JobState_JOB_STATE_FAILED, lastError: "outside the folder"},
		{name: "done by the parser stays as it is", start: amrpipev1.JobState_JOB_STATE_DONE, logs: []string{queued, end},
			state: amrpipev1.JobState_JOB_STATE_DONE, unchanged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.start == amrpipev1.JobState_JOB_STATE_UNSPECIFIED {
				tt.start = amrpipev1.JobState_JOB_STATE_SUBMITTED
			}
			r := &amrpipev1.JobRecord{JobId: testJob, State: tt.start}
			if changed := apply(r, decoded(t, tt.logs...), nil, nil, t0); changed == tt.unchanged {
				t.Fatalf("apply reported change %v", changed)
			}
			if r.GetState() != tt.state || r.GetJobEndSeen() != tt.endSeen || (r.GetEnded() != nil) != tt.ended ||
				!slices.Equal(r.GetFilesAnnounced(), tt.files) || !strings.Contains(r.GetLastError(), tt.lastError) {
				t.Fatalf("record %v; want state %v, job_end_seen %v, ended %v, files %v, last error with %q",
					r, tt.state, tt.endSeen, tt.ended, tt.files, tt.lastError)
			}
			if apply(r, decoded(t, tt.logs...), nil, nil, t0) {
				t.Fatal("applying the same events again changed the record")
			}
		})
	}
}

func TestApplyGivesOneRecordInAnyOrder(t *testing.T) {
	logs := []string{queued, started, progress, manifest, usergroup, end}
	inOrder := &amrpipev1.JobRecord{JobId: testJob, State: amrpipev1.JobState_JOB_STATE_SUBMITTED}
	apply(inOrder, decoded(t, logs...), nil, nil, t0)
	// The queue may deliver the end before the progress API's pages, one event at a time.
	mixed := &amrpipev1.JobRecord{JobId: testJob, State: amrpipev1.JobState_JOB_STATE_SUBMITTED}
	for _, l := range []string{end, usergroup, queued, progress, manifest, started} {
		apply(mixed, decoded(t, l), nil, nil, t0)
	}
	slices.Sort(mixed.FilesAnnounced)
	if mixed.String() != inOrder.String() {
		t.Fatalf("out of order: %v\nin order:     %v", mixed, inOrder)
	}
}

func TestApplyFillsAMissingRecordFromTheSubmittedJob(t *testing.T) {
	sj := &amrpipev1.SubmittedJob{JobId: testJob, Spec: &amrpipev1.JobSpec{SpecId: "spec-1"}, Container: "c"}
	r := &amrpipev1.JobRecord{JobId: testJob}
	apply(r, nil, []string{"malformed event 2"}, sj, t0)
	if r.GetSpec().GetSpecId() != "spec-1" || r.GetContainer() != "c" || r.GetState() != amrpipev1.JobState_JOB_STATE_SUBMITTED || r.GetLastError() != "malformed event 2" {
		t.Fatalf("record %v", r)
	}
}

func TestEventName(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"FinishManifestFileUpload", "FinishManifestFileUpload"},
		{"finishmanifestfileupload", "FinishManifestFileUpload"},
		{"JobEnd", "JobEnd"},
		{"JobLogFileCreate", "JobLogFileCreate"},
		{"SomethingNew", ""}, // outside SharePoint's set: never a subject
		{"AmrpipeJobChanged", ""},
	}
	for _, tt := range tests {
		e, err := newEvent(testJob, []byte(wire(tt.raw)), 0)
		if tt.want == "" {
			if !errors.Is(err, errUnknownEvent) {
				t.Errorf("%s: name %q, %v; want refused as outside SharePoint's set", tt.raw, e.name, err)
			}
			continue
		}
		if err != nil || e.name != tt.want {
			t.Errorf("%s: name %q, %v; want %q", tt.raw, e.name, err, tt.want)
		}
	}
}

func TestDecodePageSkipsWhatDoesNotDecode(t *testing.T) {
	s := &Stage{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var err error
	if s.metrics, err = newMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	logs := []string{
		queued,
		`{"Event":"JobStart","JobId":` + `"` + testJob + `"`, // cut short
		strings.Replace(started, testJob, "00000000-0000-0000-0000-000000000009", 1),
		wire("Job.End"),                     // not SharePoint's
		wire(strings.Repeat("JobEnd", 900)), // 5 KB of name
		progress,
	}
	events, problems, unknown := s.decodePage(testJob, "4", logs)
	if len(events) != 2 || events[0].seq != 5 || events[1].seq != 10 {
		t.Fatalf("events %v; want JobQueued as 5 and JobProgress as 10", events)
	}
	if len(problems) != 3 || !strings.Contains(problems[1], "event of job") || !strings.Contains(problems[2], "over its bounds") {
		t.Fatalf("problems %q; want the cut event, the other job's and the oversized name", problems)
	}
	if len(unknown) != 1 || !strings.Contains(unknown[0], "Job.End") {
		t.Fatalf("unknown %q; want the name outside SharePoint's set", unknown)
	}
}

// TestPace: each state has its pace, the tenant's budget slows every job when many are followed,
// and jitter stays within ±10% (u is the uniform draw: 0, 0.5, just under 1).
func TestPace(t *testing.T) {
	p := pace{running: time.Minute, queued: 5 * time.Minute, withQueue: 5 * time.Minute, perMinute: 300}
	running, queued := amrpipev1.JobState_JOB_STATE_RUNNING, amrpipev1.JobState_JOB_STATE_QUEUED
	tests := []struct {
		name  string
		why   string
		state amrpipev1.JobState
		live  int
		queue bool
		want  time.Duration // at u = 0.5 (no jitter)
		fixed bool          // no jitter at all
	}{
		{name: "running job about once a minute", why: whyInterval, state: running, live: 10, want: time.Minute},
		{name: "queued job slowly", why: whyInterval, state: queued, live: 10, want: 5 * time.Minute},
		{name: "submitted, not even queued yet", why: whyInterval, state: amrpipev1.JobState_JOB_STATE_SUBMITTED, live: 1, want: 5 * time.Minute},
		{name: "running with the report queue", why: whyInterval, state: running, live: 10, queue: true, want: 5 * time.Minute},
		{name: "first poll after a running job's interval", why: whyFirst, state: amrpipev1.JobState_JOB_STATE_SUBMITTED, live: 1, want: time.Minute},
		{name: "first poll with the report queue", why: whyFirst, state: amrpipev1.JobState_JOB_STATE_SUBMITTED, live: 1, queue: true, want: 5 * time.Minute},
		{name: "confirming an end", why: whyConfirm, state: amrpipev1.JobState_JOB_STATE_ENDED, live: 10, want: time.Minute},
		{name: "budget: 3000 jobs on one host at 300 a minute", why: whyInterval, state: running, live: 3000, want: 10 * time.Minute},
		{name: "budget slows a queued job too", why: whyInterval, state: queued, live: 6000, want: 20 * time.Minute},
		{name: "more pages at once", why: whyMorePages, state: running, live: 1, want: 200 * time.Millisecond, fixed: true},
		{name: "more pages within the budget", why: whyMorePages, state: running, live: 600, want: 2 * time.Minute, fixed: true},
		{name: "queue event soon", why: whyQueue, state: running, live: 1, want: 2 * time.Second, fixed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &again{why: tt.why, state: tt.state}
			if got := p.delay(a, tt.live, tt.queue, 0.5); got != tt.want {
				t.Errorf("delay = %s, want %s", got, tt.want)
			}
			lo, hi := p.delay(a, tt.live, tt.queue, 0), p.delay(a, tt.live, tt.queue, 0.999999)
			if tt.fixed && (lo != tt.want || hi != tt.want) {
				t.Errorf("jittered %s..%s, want exactly %s", lo, hi, tt.want)
			}
			if !tt.fixed && (lo != tt.want*9/10 || hi < tt.want*11/10-time.Millisecond || hi > tt.want*11/10) {
				t.Errorf("jitter %s..%s, want ±10%% of %s", lo, hi, tt.want)
			}
		})
	}
	if got := (pace{running: time.Minute}).delay(&again{why: whyInterval, state: running}, 1_000_000, false, 0.5); got != time.Minute {
		t.Errorf("without a budget: %s, want the interval", got)
	}
}

// TestPageSizes: a page is short only against a longer page seen before on the same host, so a
// relay that has not yet seen a full page reads on (one call too many, never an event too few).
func TestPageSizes(t *testing.T) {
	var p pageSizes
	steps := []struct {
		host  string
		n     int
		short bool
	}{
		{host: "a", n: 3},              // nothing known: read on
		{host: "a", n: 3},              // as long as the longest: read on
		{host: "a", n: 200},            // a full page
		{host: "a", n: 7, short: true}, // shorter than SharePoint's longest: all there was
		{host: "b", n: 7},              // another tenant learns on its own
		{host: "a", n: 200},
	}
	for i, s := range steps {
		if got := p.short(s.host, s.n); got != s.short {
			t.Errorf("step %d: a page of %d on %s: short = %v, want %v", i, s.n, s.host, got, s.short)
		}
	}
}
