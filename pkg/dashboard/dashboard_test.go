package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/dashboard"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestEventStream follows one client of /events while a plan runs: what an operator reads on the
// page (jobs and their progress, the plan's status and report, throttling, dead letters) arrives
// in the snapshots, with nothing secret in them.
func TestEventStream(t *testing.T) {
	p := newPipeline(t)
	validation := filepath.Join(t.TempDir(), "report.html")
	base := p.serve(dashboard.Options{ValidationReport: validation, PlanInterval: 100 * time.Millisecond})
	p.plan("plan-a", 100, "job-1", "job-2")
	s := openStream(t, base)
	const secret = "c2VjcmV0LXNpZ25hdHVyZQ"

	steps := []struct {
		name  string
		do    func()
		until func(*dashboard.Snapshot) bool
		check func(*testing.T, *dashboard.Snapshot)
	}{
		{
			name:  "submitted jobs are listed with the planner's estimate and no rate",
			until: func(sn *dashboard.Snapshot) bool { return job(sn, "job-1") != nil && job(sn, "job-2") != nil },
			check: func(t *testing.T, sn *dashboard.Snapshot) {
				j := job(sn, "job-1")
				if j.State != "submitted" || j.Plan != "plan-a" || j.Expected != 100 || *j.Percent != 0 || j.ETASeconds != nil {
					t.Errorf("job-1 = %+v", j)
				}
				if sn.JobsByState["submitted"] != 2 || sn.JobsTotal != 2 {
					t.Errorf("jobs by state %v of %d", sn.JobsByState, sn.JobsTotal)
				}
			},
		},
		{
			name: "progress gives a percentage, a rate and an ETA; the expected total grows",
			do: func() {
				p.progress("job-1", 40, 200)
				time.Sleep(20 * time.Millisecond) // two updates apart in time make a rate
				p.progress("job-1", 80, 200)
			},
			until: func(sn *dashboard.Snapshot) bool { j := job(sn, "job-1"); return j != nil && j.Objects == 80 },
			check: func(t *testing.T, sn *dashboard.Snapshot) {
				j := job(sn, "job-1")
				if j.State != "running" || j.Expected != 200 || *j.Percent != 40 || j.Rate <= 0 || j.ETASeconds == nil || *j.ETASeconds <= 0 {
					t.Errorf("job-1 = %+v", j)
				}
			},
		},
		{
			name:  "every object exported is not 100 % while the job is not done",
			do:    func() { p.progress("job-1", 200, 200) },
			until: func(sn *dashboard.Snapshot) bool { j := job(sn, "job-1"); return j != nil && j.Objects == 200 },
			check: func(t *testing.T, sn *dashboard.Snapshot) {
				if j := job(sn, "job-1"); *j.Percent >= 100 || j.ETASeconds != nil {
					t.Errorf("job-1 = %+v, want under 100 %% and no ETA", j)
				}
			},
		},
		{
			name: "done is 100 %; the plan completes with a run report",
			do: func() {
				p.finish("job-1", 200)
				p.progress("job-2", 10, 10)
				p.finish("job-2", 10)
			},
			until: func(sn *dashboard.Snapshot) bool {
				pl := planRow(sn, "plan-a")
				return pl != nil && pl.State == "complete"
			},
			check: func(t *testing.T, sn *dashboard.Snapshot) {
				if j := job(sn, "job-1"); j.State != "done" || *j.Percent != 100 {
					t.Errorf("job-1 = %+v", j)
				}
				pl := planRow(sn, "plan-a")
				if pl.JobsByState["done"] != 2 || pl.Specs != 2 || pl.Objects != 210 || pl.Report != "/plans/plan-a/report.html" {
					t.Errorf("plan-a = %+v", pl)
				}
			},
		},
		{
			name: "a dead letter appears with its reason, its SAS signature redacted",
			do: func() {
				p.deadLetter(topology.StageRelay, "GET https://acct.blob.core.windows.net/q1?sv=2024-08-04&sig="+secret+": 403 AuthorizationFailure", "m1")
			},
			until: func(sn *dashboard.Snapshot) bool { return sn.DeadLetters.Total == 1 && len(sn.DeadLetters.Recent) == 1 },
			check: func(t *testing.T, sn *dashboard.Snapshot) {
				d := sn.DeadLetters.Recent[0]
				if d.Stage != topology.StageRelay || !strings.Contains(d.Reason, "sig=REDACTED") || !strings.HasSuffix(d.Reason, "403 AuthorizationFailure") || d.Deliveries != 3 {
					t.Errorf("dead letter = %+v", d)
				}
			},
		},
		{
			name: "throttling: a paused host, SharePoint's postponements and SQL throttling wait",
			do: func() {
				kv := p.env.KV(t, topology.BucketThrottle)
				if err := throttle.NewKV(kv, throttle.Clock{}).Pause(context.Background(), "contoso.sharepoint.com", time.Now().Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
				p.event("job-1", topology.EventJobPostponed, "e1", &amrpipev1.MigrationEvent{Type: amrpipev1.EventType_EVENT_TYPE_JOB_POSTPONED,
					Payload: &amrpipev1.MigrationEvent_JobPostponed{JobPostponed: &amrpipev1.JobPostponed{}}})
				p.event("job-1", topology.EventJobEnd, "e2", &amrpipev1.MigrationEvent{Type: amrpipev1.EventType_EVENT_TYPE_JOB_END,
					Payload: &amrpipev1.MigrationEvent_JobEnd{JobEnd: &amrpipev1.JobStats{WaitTimeOnSqlThrottlingMilliseconds: 1500}}})
			},
			until: func(sn *dashboard.Snapshot) bool {
				return len(sn.Throttling.Hosts) == 1 && sn.Throttling.Postponed == 1 && sn.Throttling.SQLThrottleMs == 1500
			},
			check: func(t *testing.T, sn *dashboard.Snapshot) {
				if h := sn.Throttling.Hosts[0]; h.Host != "contoso.sharepoint.com" {
					t.Errorf("paused host %+v", h)
				}
				if j := job(sn, "job-1"); j.Postponed != 1 || j.SQLThrottleMs != 1500 {
					t.Errorf("job-1 = %+v", j)
				}
			},
		},
		{
			name:  "the validation report is linked once written",
			do:    func() { writeFile(t, validation, "<html>validation</html>") },
			until: func(sn *dashboard.Snapshot) bool { return sn.Validation != "" },
			check: func(t *testing.T, sn *dashboard.Snapshot) {
				if body := fetch(t, base+sn.Validation, http.StatusOK); body != "<html>validation</html>" {
					t.Errorf("validation report %q", body)
				}
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.do != nil {
				st.do()
			}
			sn := s.until(st.name, st.until)
			st.check(t, sn)
			if raw := fmt.Sprint(sn); strings.Contains(raw, secret) {
				t.Errorf("a snapshot holds the SAS signature")
			}
		})
	}

	t.Run("run report of a plan, rendered from the job store", func(t *testing.T) {
		if body := fetch(t, base+"/plans/plan-a/report.html", http.StatusOK); !strings.Contains(body, "Run report of plan plan-a") {
			t.Errorf("report page:\n%.500s", body)
		}
		fetch(t, base+"/plans/no-such-plan/report.html", http.StatusNotFound)
	})
	t.Run("another site's name for 127.0.0.1 is refused", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, base+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "attacker.example:80"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("Host attacker.example: %s, want 403", resp.Status)
		}
	})
	t.Run("the page is self-contained", func(t *testing.T) {
		page := fetch(t, base+"/", http.StatusOK)
		for _, want := range []string{`<script src="app.js">`, `<link rel="stylesheet" href="style.css">`} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(fetch(t, base+"/app.js", http.StatusOK), "https://") {
			t.Errorf("the page refers to another site")
		}
	})
}

// TestBounds: the jobs sent are capped (live first, every job still counted), the event streams
// are limited, changes are coalesced, and a client that does not read is dropped without holding
// anything up.
func TestBounds(t *testing.T) {
	p := newPipeline(t)
	const maxJobs = 3
	interval := 200 * time.Millisecond
	base := p.serve(dashboard.Options{MaxJobs: maxJobs, MaxClients: 2, Interval: interval, WriteTimeout: 300 * time.Millisecond})
	ids := []string{"j1", "j2", "j3", "j4", "j5", "j6", "j7", "j8"}
	p.plan("plan-b", 50, ids...)
	s := openStream(t, base)

	t.Run("jobs capped, live first, all counted", func(t *testing.T) {
		for _, id := range ids[:6] {
			p.progress(id, 50, 50)
			p.finish(id, 50)
		}
		p.progress("j8", 5, 50)
		sn := s.until("six jobs done", func(sn *dashboard.Snapshot) bool {
			return sn.JobsByState["done"] == 6 && sn.JobsByState["running"] == 1
		})
		if sn.JobsTotal != len(ids) || sn.JobsShown != maxJobs || len(sn.Jobs) != maxJobs {
			t.Fatalf("total %d, shown %d, sent %d; want %d, %d, %d", sn.JobsTotal, sn.JobsShown, len(sn.Jobs), len(ids), maxJobs, maxJobs)
		}
		if sn.Jobs[0].ID != "j8" && sn.Jobs[0].ID != "j7" || sn.Jobs[1].State == "done" {
			t.Errorf("live jobs not first: %s %s, %s %s", sn.Jobs[0].ID, sn.Jobs[0].State, sn.Jobs[1].ID, sn.Jobs[1].State)
		}
	})

	t.Run("changes coalesced: at most one event per interval", func(t *testing.T) {
		before, start := s.events, time.Now()
		const changes = 40
		for i := range changes {
			p.progress("j8", int64(6+i), 50)
		}
		s.until("the last change", func(sn *dashboard.Snapshot) bool { j := job(sn, "j8"); return j != nil && j.Objects == 5+changes })
		got, most := s.events-before, int(time.Since(start)/interval)+1
		if got > most || got >= changes {
			t.Errorf("%d changes in %s gave %d events; want at most %d", changes, time.Since(start), got, most)
		}
	})

	t.Run("a client that does not read is dropped", func(t *testing.T) {
		// A dashboard of its own, sending an event per change (each a little bigger: dead letters
		// of long reasons) to a client that reads none: its buffers fill, a write times out, and
		// its slot frees.
		base := p.serve(dashboard.Options{MaxClients: 1, Interval: time.Millisecond, WriteTimeout: 300 * time.Millisecond})
		slow := dialUnread(t, base)
		defer func() { _ = slow.Close() }()
		// The slow client holds the only slot: another is refused while it stays.
		if status := eventsStatus(t, base); status != http.StatusServiceUnavailable {
			t.Fatalf("second client: %d, want 503", status)
		}
		long := strings.Repeat("a long reason; ", 130)
		for i := 0; eventsStatus(t, base) != http.StatusOK; i++ {
			if i > 1000 {
				t.Fatal("the slow client was never dropped")
			}
			p.deadLetter(topology.StageParser, long, fmt.Sprint("long-", i))
		}
	})
}

// eventsStatus is the status of a request for /events (a stream accepted is cut at once).
func eventsStatus(t *testing.T, base string) int {
	t.Helper()
	resp, cancel := get(t, base+dashboard.PathEvents)
	cancel()
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	return resp.StatusCode
}

// dialUnread opens /events on a connection with a small receive buffer and never reads it.
func dialUnread(t *testing.T, base string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	host := strings.TrimPrefix(base, "http://") // the dashboard answers a loopback Host only
	conn, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Read up to the stream's first line, so that its handler holds a slot; then nothing more.
	r := bufio.NewReaderSize(conn, 16)
	status, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("slow client: %q, %v", status, err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "retry:") {
			return conn
		}
	}
}

func fetch(t *testing.T, url string, status int) string {
	t.Helper()
	resp, cancel := get(t, url)
	defer cancel()
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %s, want %d", url, resp.Status, status)
	}
	return string(body)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
