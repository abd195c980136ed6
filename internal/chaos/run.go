package chaos

// This file runs the suite: build, start, submit, inject on a seeded schedule, wait, check.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// Runner is one run of the suite in a directory of its own (binaries, logs, stores).
type Runner struct {
	cfg Config
	dir string
	rng *rand.Rand

	stack   *Stack
	tenant  *tenant.Tenant
	plans   []*amrpipev1.PlanRequest
	victims []string // lower-case server-relative URLs whose jobs' blobs fail for good
	// victimJob are the jobs reading them (known once the run is checked).
	victimJob map[string]bool

	mu        sync.Mutex
	rep       *Report
	forgeries []Forgery
	forgeErr  error
}

// NewRunner prepares a run of cfg in dir.
func NewRunner(cfg Config, dir string) *Runner {
	return &Runner{cfg: cfg, dir: dir, victimJob: map[string]bool{}, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x636861_6f73)),
		rep: &Report{Mode: cfg.Mode, Seed: cfg.Seed, Dir: dir, Kills: map[string]int{}}}
}

// Run carries the run out and returns its report. The report lists every check that failed
// (Report.Violations); err is for a run that could not be carried out (a build, a process that
// would not start, the timeout), and the report then holds what was done until then.
func (r *Runner) Run(ctx context.Context) (*Report, error) {
	begin := time.Now()
	defer func() { r.rep.Took = time.Since(begin) }()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if err := r.setUp(ctx); err != nil {
		return r.rep, err
	}
	r.rep.StartedIn = time.Since(begin)
	exportBegin := time.Now()
	for _, p := range r.plans {
		if _, err := bus.Publish(ctx, r.stack.JS, topology.SubjectPlanSubmit, p, "plan/"+p.GetPlanId()); err != nil {
			return r.rep, fmt.Errorf("submit plan %s: %w", p.GetPlanId(), err)
		}
	}
	progressCtx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go r.progress(progressCtx, exportBegin)
	go r.supervise(progressCtx)
	forged := make(chan struct{})
	go func() { defer close(forged); r.forge(ctx) }()

	if err := r.inject(ctx); err != nil {
		return r.rep, err
	}
	<-forged
	if err := testenv.WaitIdle(ctx, r.stack.JS, r.stack.Store); err != nil {
		r.violate("the pipeline did not go idle: %v", err)
		r.unfinished(ctx)
		return r.rep, err
	}
	r.rep.Export = time.Since(exportBegin)
	stopProgress()
	if err := r.check(ctx); err != nil {
		return r.rep, err
	}
	return r.rep, nil
}

// setUp draws the victims, builds the ground truth's tenant and the programs, and starts the stack.
func (r *Runner) setUp(ctx context.Context) error {
	for _, i := range r.rng.Perm(len(r.cfg.VictimCandidates))[:min(r.cfg.Victims, len(r.cfg.VictimCandidates))] {
		r.victims = append(r.victims, strings.ToLower(r.cfg.VictimCandidates[i]))
	}
	sort.Strings(r.victims)
	r.rep.VictimURLs, r.rep.VictimFile = r.victims, r.cfg.VictimFile
	profile, err := tenantProfile(r.cfg.Profile)
	if err != nil {
		return err
	}
	if r.tenant, err = tenant.New(profile); err != nil {
		return err
	}
	r.logf("building the programs (race %v)", r.cfg.Race)
	bin := filepath.Join(r.dir, "bin")
	if err := Build(ctx, bin, r.cfg.Race); err != nil {
		return err
	}
	r.logf("starting nats-server, Azurite, the blob proxy, the simulator and the five stages")
	if r.stack, err = StartStack(ctx, r.cfg, r.dir, bin, r.isVictim); err != nil {
		return err
	}
	r.plans = r.cfg.Plans(r.stack.SiteURL)
	for _, p := range r.plans {
		p.Incremental = true // so that the jobs reading list roots commit change tokens
	}
	return nil
}

// isVictim says whether a job is one of those whose blobs fail for good: one of its URLs was drawn.
func (r *Runner) isVictim(ctx context.Context, s *Stack, jobID string) (bool, error) {
	rec, _, err := s.Store.Job(ctx, jobID)
	if errors.Is(err, jobstore.ErrNotFound) {
		return false, nil // not a job of ours: nothing the decryptor asks for
	}
	if err != nil {
		return false, err
	}
	return r.victimSpec(rec.GetSpec()), nil
}

func (r *Runner) victimSpec(spec *amrpipev1.JobSpec) bool {
	for _, p := range jobPaths(spec.GetUrls()) {
		if slices.Contains(r.victims, p) {
			return true
		}
	}
	return false
}

// inject runs the seeded schedule once the export has begun (the first records are out): the
// storm (its own timer), then the kills, with the nats-server restart after one of them (once the
// storm is over, so that the two do not hide each other).
func (r *Runner) inject(ctx context.Context) error {
	if err := r.waitRecords(ctx); err != nil {
		return err
	}
	r.logf("first records: the export runs; injecting (seed %d)", r.cfg.Seed)
	stormDone := make(chan struct{})
	go func() { defer close(stormDone); r.storm(ctx) }()
	for i := 1; i <= r.cfg.Kills; i++ {
		if err := backoff.Sleep(ctx, r.uniform(r.cfg.KillGap)); err != nil {
			return err
		}
		p := r.stack.Stages[r.rng.IntN(len(r.stack.Stages))]
		down := r.uniform(r.cfg.Down)
		if err := r.kill(ctx, p, down); err != nil {
			return err
		}
		if i == r.cfg.NATSRestartAfter {
			select {
			case <-stormDone:
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := r.restartNATS(ctx); err != nil {
				return err
			}
		}
	}
	select {
	case <-stormDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// kill kills a stage with SIGKILL, leaves it down for down, and starts it again as it was.
func (r *Runner) kill(ctx context.Context, p *Proc, down time.Duration) error {
	r.mu.Lock()
	r.rep.Kills[p.Name]++
	r.rep.KillTotal++
	n := r.rep.KillTotal
	r.mu.Unlock()
	r.logf("kill %d: %s (SIGKILL), down %s", n, p.Name, down.Round(time.Millisecond))
	return p.Restart(ctx, down, 2*time.Minute)
}

// supervise starts again, as a container's supervisor would, a stage that exited by itself (the
// exit stays a violation: Proc.Unexpected), so that one failure does not hide the rest.
func (r *Runner) supervise(ctx context.Context) {
	for backoff.Sleep(ctx, time.Second) == nil {
		for _, p := range r.stack.Stages {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			if revived, err := p.Revive(sctx); revived {
				r.logf("%s exited by itself; started again (%v)", p.Name, err)
			}
			cancel()
		}
	}
}

// restartNATS kills nats-server, starts it again on the same port with the same store, and waits
// for every stage to be ready again: the services must reconnect by themselves.
func (r *Runner) restartNATS(ctx context.Context) error {
	begin := time.Now()
	if err := r.stack.NATS.Kill(); err != nil {
		return err
	}
	r.logf("nats-server killed (SIGKILL)")
	if err := backoff.Sleep(ctx, time.Second); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := r.stack.NATS.Start(sctx); err != nil {
		return err
	}
	up := time.Now()
	for _, p := range r.stack.Stages {
		if err := p.WaitReady(sctx); err != nil {
			r.violate("%s was not ready again within 2 minutes of the nats-server restart: %v", p.Name, err)
		}
	}
	r.mu.Lock()
	r.rep.NATSRestarts++
	r.rep.NATSDown = up.Sub(begin)
	r.rep.Reconnected = time.Since(up)
	r.mu.Unlock()
	r.logf("nats-server back after %s; every stage ready %s later", up.Sub(begin).Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
	return nil
}

// storm makes every blob answer 503 ServerBusy for a while, StormDelay after the first records.
func (r *Runner) storm(ctx context.Context) {
	if r.cfg.Storm <= 0 || backoff.Sleep(ctx, r.cfg.StormDelay) != nil {
		return
	}
	before := r.stack.Proxy.Stats().Stormed
	r.stack.Proxy.SetStorm(true)
	r.logf("503 storm begins (%s)", r.cfg.Storm)
	_ = backoff.Sleep(ctx, r.cfg.Storm)
	r.stack.Proxy.SetStorm(false)
	n := r.stack.Proxy.Stats().Stormed - before
	r.logf("503 storm over: %d answers", n)
	r.mu.Lock()
	r.rep.Storm = r.cfg.Storm
	r.mu.Unlock()
}

// forge posts the forgeries to the report queue once two encrypted jobs of ours exist (live ones
// if it can: a forged end of a running job is the one that would do harm).
func (r *Runner) forge(ctx context.Context) {
	err := func() error {
		a, b, err := r.forgeTargets(ctx)
		if err != nil {
			return err
		}
		fs, err := Forge(ctx, r.stack.Store, r.stack.KEK, time.Now(), a, b)
		if err != nil {
			return err
		}
		acct, err := storage.Open(r.stack.Storage)
		if err != nil {
			return err
		}
		qc, err := acct.QueueClient(reportQueue)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if _, err := qc.EnqueueMessage(ctx, f.Text, nil); err != nil {
				return fmt.Errorf("post %s: %w", f.Kind, err)
			}
		}
		r.mu.Lock()
		r.forgeries = fs
		r.mu.Unlock()
		r.logf("posted %d forged messages against jobs %s and %s", len(fs), a.GetJobId(), b.GetJobId())
		return nil
	}()
	if err != nil {
		r.mu.Lock()
		r.forgeErr = err
		r.mu.Unlock()
	}
}

// forgeTargets waits for two encrypted jobs that are not victims, preferring live ones; after a
// minute it takes final ones too.
func (r *Runner) forgeTargets(ctx context.Context) (a, b *amrpipev1.JobRecord, err error) {
	deadline := time.Now().Add(time.Minute)
	for {
		jobs, err := r.stack.Store.Jobs(ctx)
		if err == nil {
			var live, any []*amrpipev1.JobRecord
			for _, j := range jobs {
				if !j.GetEncrypted() || r.victimSpec(j.GetSpec()) {
					continue
				}
				any = append(any, j)
				if !jobstore.Final(j) {
					live = append(live, j)
				}
			}
			switch {
			case len(live) >= 2:
				return live[0], live[1], nil
			case len(any) >= 2 && time.Now().After(deadline):
				return any[0], any[1], nil
			}
		}
		if err := backoff.Sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, nil, fmt.Errorf("no two encrypted jobs to forge against: %w", err)
		}
	}
}

// waitRecords waits for the first record batch.
func (r *Runner) waitRecords(ctx context.Context) error {
	for {
		if n, err := r.streamMsgs(ctx, topology.StreamRecords); err == nil && n > 0 {
			return nil
		}
		if err := backoff.Sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("no records: %w", err)
		}
	}
}

func (r *Runner) streamMsgs(ctx context.Context, name string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := r.stack.JS.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// progress logs a line every ten seconds: jobs by state, record batches, kills.
func (r *Runner) progress(ctx context.Context, begin time.Time) {
	for backoff.Sleep(ctx, 10*time.Second) == nil {
		states := map[string]int{}
		if jobs, err := r.stack.Store.Jobs(ctx); err == nil {
			for _, j := range jobs {
				states[jobstore.StateName(j.GetState())]++
			}
		}
		batches, _ := r.streamMsgs(ctx, topology.StreamRecords)
		r.mu.Lock()
		kills := r.rep.KillTotal
		r.mu.Unlock()
		r.logf("%s: jobs %v, %d record batches, %d kills", time.Since(begin).Round(time.Second), states, batches, kills)
	}
}

// unfinished records why each job that is not final is not.
func (r *Runner) unfinished(ctx context.Context) {
	jobs, err := r.stack.Store.Jobs(context.WithoutCancel(ctx))
	if err != nil {
		return
	}
	for _, j := range jobs {
		if !jobstore.Final(j) {
			r.violate("job %s (%s) left %s: %s", j.GetJobId(), describe(j.GetSpec()),
				jobstore.StateName(j.GetState()), jobstore.Blocker(j))
		}
	}
}

// Tails returns the last n lines of every process's log.
func (r *Runner) Tails(n int) string {
	if r.stack == nil {
		return ""
	}
	var b strings.Builder
	for _, p := range r.stack.Procs() {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.Name, p.LogPath, p.Tail(n))
	}
	return b.String()
}

// Close stops the stack.
func (r *Runner) Close() error {
	if r.stack == nil {
		return nil
	}
	return r.stack.Close()
}

func (r *Runner) violate(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Violations = append(r.rep.Violations, fmt.Sprintf(format, args...))
}

func (r *Runner) logf(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "chaos %s: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
}

// uniform draws a duration in [d[0], d[1]).
func (r *Runner) uniform(d [2]time.Duration) time.Duration {
	if d[1] <= d[0] {
		return d[0]
	}
	return d[0] + time.Duration(r.rng.Int64N(int64(d[1]-d[0])))
}
