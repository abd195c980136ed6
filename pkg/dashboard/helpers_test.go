package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/dashboard"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// pipeline writes what the stages write, through the same functions: plannings, submissions and
// job records by the job store's transitions, dead letters and events by bus.Publish.
type pipeline struct {
	t     *testing.T
	env   *testenv.JetStream
	store *jobstore.Store
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	env := testenv.StartJetStream(t)
	store, err := jobstore.Open(context.Background(), env.JS, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &pipeline{t: t, env: env, store: store}
}

// serve starts a dashboard on a free loopback port, stopped when the test ends.
func (p *pipeline) serve(o dashboard.Options) string {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := dashboard.Listen(ctx, p.env.Conn, "127.0.0.1:0", o)
	if err != nil {
		p.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	p.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			p.t.Error(err)
		}
	})
	return strings.TrimSuffix(srv.URL, "/")
}

// plan stores a planning of one spec per job id, as the planner does, and submits each spec's
// job as the submitter does; expected is SharePoint's first estimate of each job.
func (p *pipeline) plan(planID string, expected int64, jobIDs ...string) {
	p.t.Helper()
	p.planFolder(planID, "https://contoso.sharepoint.com/sites/hr/Shared Documents/", expected, jobIDs...)
}

// planFolder is plan with each job reading folder + its id.
func (p *pipeline) planFolder(planID, folder string, expected int64, jobIDs ...string) {
	p.t.Helper()
	ctx := context.Background()
	var specs []*amrpipev1.JobSpec
	for _, id := range jobIDs {
		specs = append(specs, &amrpipev1.JobSpec{SpecId: "spec-" + id, PlanId: planID, SiteUrl: "https://contoso.sharepoint.com/sites/hr",
			Urls: []string{folder + id}, ExpectedItems: expected})
	}
	if _, err := p.store.SavePlanning(ctx, jobstore.PlanIndex(planID), planID, specs); err != nil {
		p.t.Fatal(err)
	}
	for i, id := range jobIDs {
		job := &amrpipev1.SubmittedJob{JobId: id, Spec: specs[i], Container: "manifests", Submitted: timestamppb.Now()}
		if _, err := p.store.PutSubmission(ctx, specs[i].GetSpecId(), &amrpipev1.Submission{Outcome: &amrpipev1.Submission_Job{Job: job}}); err != nil {
			p.t.Fatal(err)
		}
		p.fire(id, jobstore.Accepted(job))
	}
}

func (p *pipeline) fire(jobID string, ts ...jobstore.Transition) {
	p.t.Helper()
	if _, err := p.store.Fire(context.Background(), jobID, ts...); err != nil {
		p.t.Fatalf("job %s: %v", jobID, err)
	}
}

// progress is SharePoint's JobStart (once) and JobProgress.
func (p *pipeline) progress(jobID string, objects, expected int64) {
	p.t.Helper()
	p.fire(jobID, jobstore.Started(time.Now()), jobstore.Progressed(&amrpipev1.JobStats{ObjectsProcessed: objects, TotalExpectedSpObjects: expected}))
}

// finish is JobEnd, the relay's confirmation and the parser's completion.
func (p *pipeline) finish(jobID string, objects int64) {
	p.t.Helper()
	st := &amrpipev1.JobStats{ObjectsProcessed: objects, TotalExpectedSpObjects: objects}
	p.fire(jobID, jobstore.EndSeen(time.Now(), st), jobstore.EndConfirmed(), jobstore.Completed())
}

// deadLetter publishes a dead letter on the stage's subject, as a stage does.
func (p *pipeline) deadLetter(stage, reason, id string) {
	p.t.Helper()
	dl := &amrpipev1.DeadLetter{Stage: stage, Subject: "azure-queue/q1", Reason: reason, At: timestamppb.Now(), Deliveries: 3, MsgId: id}
	if _, err := bus.Publish(context.Background(), p.env.JS, topology.DLQSubject(stage), dl, stage+"/"+id); err != nil {
		p.t.Fatal(err)
	}
}

// event relays one of SharePoint's events of a job, as the relay does.
func (p *pipeline) event(jobID, name, id string, ev *amrpipev1.MigrationEvent) {
	p.t.Helper()
	ev.JobId, ev.RawName, ev.Time = jobID, name, timestamppb.Now()
	msg := &amrpipev1.RelayedEvent{EventId: id, Event: ev}
	if _, err := bus.Publish(context.Background(), p.env.JS, topology.EventSubject(jobID, name), msg, id); err != nil {
		p.t.Fatal(err)
	}
}

// stream is one client of the event stream.
type stream struct {
	t      *testing.T
	resp   *http.Response
	sc     *bufio.Scanner
	cancel context.CancelFunc
	// events counts the snapshots read.
	events int
}

// openStream connects to /events; it fails the test on another status than 200.
func openStream(t *testing.T, base string) *stream {
	t.Helper()
	resp, cancel := get(t, base+dashboard.PathEvents)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /events: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	s := &stream{t: t, resp: resp, sc: sc, cancel: cancel}
	t.Cleanup(s.close)
	return s
}

func (s *stream) close() {
	s.cancel()
	_ = s.resp.Body.Close() // the stream is cut on purpose
}

// get sends a GET that lives until the test ends or cancel is called.
func get(t *testing.T, url string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return resp, cancel
}

// until reads snapshots until one satisfies ok, and returns it; it fails the test when the
// stream ends first (the request's own deadline bounds the wait).
func (s *stream) until(what string, ok func(*dashboard.Snapshot) bool) *dashboard.Snapshot {
	s.t.Helper()
	var event string
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "snapshot":
			var snap dashboard.Snapshot
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &snap); err != nil {
				s.t.Fatalf("snapshot: %v", err)
			}
			s.events++
			if ok(&snap) {
				return &snap
			}
		}
	}
	s.t.Fatalf("the event stream ended before %s: %v", what, s.sc.Err())
	return nil
}

// job finds a job's row in a snapshot.
func job(snap *dashboard.Snapshot, id string) *dashboard.JobView {
	for i := range snap.Jobs {
		if snap.Jobs[i].ID == id {
			return &snap.Jobs[i]
		}
	}
	return nil
}

func planRow(snap *dashboard.Snapshot, id string) *dashboard.PlanView {
	for i := range snap.Plans {
		if snap.Plans[i].ID == id {
			return &snap.Plans[i]
		}
	}
	return nil
}
