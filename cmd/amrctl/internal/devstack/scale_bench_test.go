package devstack_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// BenchmarkLiveJobs submits AMRPIPE_BENCH_JOBS (default 10,000) small single-URL jobs at once
// (each one of the small site's twelve Team folders, about 45 objects) to a stack whose simulator
// exports AMRPIPE_BENCH_SIM_WORKERS jobs at a time (default 2) at AMRPIPE_BENCH_RATE objects/s
// (default 400), and waits until every job is done and every record is downstream. All jobs are
// live together (created at once, most queued at the simulator): the relay follows thousands.
//
// Azurite keeps its blob metadata in MariaDB (testenv.AzuriteOptions.SQL: its default LokiJS
// store scans every blob on every request) and the submitter's janitor sweeps a finished job's
// manifests after 10 s.
// Reported per run: seconds, SharePoint calls per job (every REST call the simulator answered,
// creates and polls), progress polls per job, and the peak of the JetStream account's storage.
// The relay polls running jobs every 5 s (production's minute scaled to jobs that take seconds),
// queued ones every 5 minutes as in production (thousands wait in the simulator's queue for
// minutes), within a tenant budget of 6,000 polls a minute. Run it with -cpuprofile:
// the stages' goroutines carry a "stage" profiler label (go tool pprof -tags), which is how
// scripts/bench_scale.sh reports the relay's CPU.
func BenchmarkLiveJobs(b *testing.B) {
	n := envInt("AMRPIPE_BENCH_JOBS", 10_000)
	// Two jobs at a time at SharePoint's 400 objects/s: a faster simulator fills Azurite with
	// blobs faster than the pipeline reads them, and every request to Azurite scans every blob it
	// stores (scripts/bench_scale.sh says by how much).
	workers := envInt("AMRPIPE_BENCH_SIM_WORKERS", 2)
	rate := float64(envInt("AMRPIPE_BENCH_RATE", 400))
	for range b.N {
		runLiveJobs(b, n, workers, rate)
	}
}

// envInt is the positive integer in the environment variable name, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func runLiveJobs(b *testing.B, n, workers int, rate float64) {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	s, err := devstack.Start(ctx, devstack.Options{Profile: tenant.SmallProfile(), Rate: rate, SimWorkers: workers,
		MaxManifestBytes: 1 << 20, PollInterval: 5 * time.Second, AzuriteSQL: true,
		StageArgs: map[string][]string{
			topology.StageRelay: {"-queued-poll-interval", "5m", "-tenant-polls-per-minute", "6000", "-concurrency", "32"},
			// The manifests of a finished job are swept soon, as a deployment that owns its
			// containers would: 80,000 blobs kept slowed Azurite more than the pipeline.
			topology.StageSubmitter: {"-blob-retention", "10s", "-janitor-interval", "15s"},
		}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	}()
	folders, err := teamFolders(ctx, s)
	if err != nil {
		b.Fatal(err)
	}
	// What each job must yield: its folder's content objects.
	want := 0
	for _, f := range folders {
		objs, err := s.Truth(ctx, []string{f.url}, tenant.ReadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		f.objects = len(objs)
	}
	peak := newStoragePeak(ctx, s)
	b.StartTimer()
	start := time.Now()
	for i := range n {
		f := folders[i%len(folders)]
		want += f.objects
		spec := &amrpipev1.JobSpec{SpecId: fmt.Sprintf("bench-%05d", i), PlanId: "bench", SiteUrl: s.SiteURL("/sites/small"),
			WebUrl: s.SiteURL("/sites/small"), Urls: []string{s.SiteURL(f.url)}, Options: &amrpipev1.ReadOptions{},
			Emit: amrpipev1.Emit_EMIT_ALL, ExpectedItems: int64(f.objects)}
		if _, err := bus.Publish(ctx, s.JS, topology.SpecSubject("bench"), spec, spec.GetSpecId()); err != nil {
			b.Fatal(err)
		}
	}
	stopProgress := logProgress(ctx, b, s, start)
	m := waitMeasured(ctx, b, s, start)
	stopProgress()
	jobs, err := s.Jobs(ctx)
	if err != nil {
		b.Fatal(err)
	}
	done := 0
	for _, j := range jobs {
		if j.GetState() == amrpipev1.JobState_JOB_STATE_DONE {
			done++
		}
	}
	if done != n || m.objects != want {
		b.Fatalf("%d of %d jobs done, %d content records of %d", done, n, m.objects, want)
	}
	b.ReportMetric(m.elapsed.Seconds(), "s")
	b.ReportMetric(float64(m.total)/float64(n), "calls/job")
	b.ReportMetric(float64(m.calls["GetMigrationJobProgress"])/float64(n), "polls/job")
	b.ReportMetric(float64(peak.stop())/(1<<20), "store-peak-MiB")
	b.ReportMetric(float64(m.objects)/m.elapsed.Seconds(), "objects/s")
}

// logProgress logs the jobs by state every minute until the returned stop is called: a run of
// thousands of jobs takes long enough that its operator wants to see it move.
func logProgress(ctx context.Context, b *testing.B, s *devstack.Stack, start time.Time) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Minute):
			}
			jobs, err := s.Jobs(ctx)
			if err != nil {
				continue
			}
			by := map[string]int{}
			for _, j := range jobs {
				by[strings.TrimPrefix(j.GetState().String(), "JOB_STATE_")]++
			}
			b.Logf("%s: %d jobs recorded, by state %v", time.Since(start).Round(time.Second), len(jobs), by)
		}
	}()
	return func() { cancel(); <-done }
}

type folder struct {
	url     string
	objects int
}

// teamFolders are the small site's twelve "Team" folders (server-relative URLs).
func teamFolders(ctx context.Context, s *devstack.Stack) ([]*folder, error) {
	lib, err := s.Tenant.Resolve("/sites/small/Shared Documents")
	if err != nil {
		return nil, err
	}
	var out []*folder
	err = s.Tenant.Walk(ctx, []tenant.Target{lib}, tenant.ReadOptions{IncludeDirectDescendantsOnly: true}, func(o *tenant.Object) error {
		if o.Type == tenant.TypeFolder && len(o.Name) >= 4 && o.Name[:4] == "Team" {
			out = append(out, &folder{url: o.ServerURL})
		}
		return nil
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("no Team folder in the small profile")
	}
	return out, err
}

// storagePeak samples the JetStream account's storage every second until stop.
type storagePeak struct {
	mu     sync.Mutex
	max    uint64
	cancel context.CancelFunc
	done   chan struct{}
}

func newStoragePeak(ctx context.Context, s *devstack.Stack) *storagePeak {
	ctx, cancel := context.WithCancel(ctx)
	p := &storagePeak{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			if info, err := s.JS.AccountInfo(ctx); err == nil {
				p.mu.Lock()
				p.max = max(p.max, info.Store)
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return p
}

func (p *storagePeak) stop() uint64 {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

// BenchmarkCallsPerMillion exports the demo's three plans (tenant.DefaultProfile, about 420K
// content objects) with the relay at production's paces (running jobs polled every minute, queued
// ones every 5 minutes) and the simulator at AMRPIPE_BENCH_RATE objects/s per job (default 400,
// SharePoint's lab figure), and reports every REST call the simulator answered per million
// content objects delivered: what a tenant pays for an export. Two ways SharePoint reports:
// "polling" (progress polls alone) and "queue" (SharePoint also writes to the Azure report queue,
// the fast path: a running job is then polled every 5 minutes as a check, and its JobEnd on the
// queue brings the last poll forward). The calls are split by purpose: job-calls (creates and
// progress polls: the relay's and the submitter's share, what the plan's 150 per million is
// about) and planning-calls (sizing the plan's folders and lists, once per plan).
func BenchmarkCallsPerMillion(b *testing.B) {
	rate := float64(envInt("AMRPIPE_BENCH_RATE", 400))
	for _, queue := range []bool{false, true} {
		name := "polling"
		if queue {
			name = "queue"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				callsPerMillion(b, rate, queue)
			}
		})
	}
}

func callsPerMillion(b *testing.B, rate float64, queue bool) {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	s, err := devstack.Start(ctx, devstack.Options{Profile: tenant.DefaultProfile(), Rate: rate, Small: testenv.DemoSmall,
		Large: testenv.DemoLarge, PollInterval: time.Minute, Queue: queue,
		StageArgs: map[string][]string{topology.StageRelay: {"-queued-poll-interval", "5m", "-queue-poll-interval", "5m"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	}()
	b.StartTimer()
	start := time.Now()
	for _, p := range testenv.DemoPlans(s.SiteURL) {
		if err := s.Submit(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	m := waitMeasured(ctx, b, s, start)
	var job int64
	for method, n := range m.calls {
		if jobCall(method) {
			job += n
		}
	}
	perM := func(n int64) float64 { return float64(n) / float64(m.objects) * 1e6 }
	b.ReportMetric(m.elapsed.Seconds(), "s")
	b.ReportMetric(float64(m.objects), "objects")
	b.ReportMetric(perM(m.total), "calls/M-objects")
	b.ReportMetric(perM(job), "job-calls/M-objects")
	b.ReportMetric(perM(m.total-job), "planning-calls/M-objects")
	b.ReportMetric(perM(m.calls["GetMigrationJobProgress"]), "polls/M-objects")
	b.Logf("calls by method: %v", m.calls)
}

// jobCall: a call about an AMR job (create, progress, status, cancel), as the simulator names
// them; the others size and resolve the plan.
func jobCall(method string) bool {
	return strings.HasPrefix(method, "CreateSPAsyncReadJob") || strings.HasPrefix(method, "GetMigrationJob") ||
		method == "DeleteMigrationJob"
}

// measured is what a scale benchmark's run took: its time, the content objects downstream and the
// simulator's REST calls.
type measured struct {
	elapsed time.Duration
	objects int
	calls   map[string]int64
	total   int64
}

// waitMeasured waits until the stack is idle, stops the timer and measures the run begun at start.
func waitMeasured(ctx context.Context, b *testing.B, s *devstack.Stack, start time.Time) measured {
	b.Helper()
	if err := s.WaitIdle(ctx); err != nil {
		b.Fatal(err)
	}
	m := measured{elapsed: time.Since(start), calls: s.Sim.Calls()}
	b.StopTimer()
	got, err := s.Records(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range got.Content {
		m.objects += c
	}
	for _, c := range m.calls {
		m.total += c
	}
	return m
}
