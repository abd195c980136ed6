package devstack_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/devstack"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// progressMonitor samples the records stream's last sequence on a connection of its own, so the
// test can tell when the export paused and when it moved again.
type progressMonitor struct {
	mu      sync.Mutex
	lastSeq uint64
	movedAt time.Time
	stop    func()
}

func monitorRecords(t *testing.T, url string) *progressMonitor {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("cluster-test-monitor"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &progressMonitor{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			sctx, scancel := context.WithTimeout(ctx, time.Second)
			if s, err := js.Stream(sctx, topology.StreamRecords); err == nil {
				m.mu.Lock()
				if seq := s.CachedInfo().State.LastSeq; seq > m.lastSeq {
					m.lastSeq, m.movedAt = seq, time.Now()
				}
				m.mu.Unlock()
			}
			scancel()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	m.stop = func() { cancel(); <-done; nc.Close() }
	t.Cleanup(m.stop)
	return m
}

func (m *progressMonitor) state() (uint64, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastSeq, m.movedAt
}

// movedSince waits until the records stream grew past seq and returns when it did.
func (m *progressMonitor) movedSince(ctx context.Context, seq uint64) (time.Time, error) {
	for {
		if last, at := m.state(); last > seq {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no record published: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill is one server shutdown of the cluster test and what followed.
type kill struct {
	what           string        // "meta leader", "leader of AMR_RECORDS", ...
	server         string        // the server shut down
	alsoMeta       bool          // it led the meta group too
	election       time.Duration // until the cluster had a new leader for what the server led
	pause          time.Duration // from the shutdown until the records stream grew again
	restartedAfter time.Duration // the server's downtime
}

// killLeader shuts down server i (a leader), waits for a new leader, measures how long the export
// paused, and restarts the server once the export moved again (keeping the cluster at three
// nodes for the next kill).
func killLeader(ctx context.Context, t *testing.T, c *testenv.Cluster, m *progressMonitor, what string, i int, newLeader func() int) kill {
	t.Helper()
	k := kill{what: what, server: c.Name(i), alsoMeta: c.MetaLeader() == i}
	seq, _ := m.state()
	at := time.Now()
	c.Shutdown(i)
	for {
		if l := newLeader(); l >= 0 && l != i {
			k.election = time.Since(at)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no new %s after shutting down %s", what, k.server)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A delivery whose acknowledgement or delayed Nak died with the server comes back after
	// AckWait: the export must move again within that (and a minute).
	mctx, mcancel := context.WithTimeout(ctx, topology.AckWait+time.Minute)
	moved, err := m.movedSince(mctx, seq)
	mcancel()
	if err != nil {
		diagnose(t, c)
		t.Fatalf("the export did not resume after the %s %s was shut down: %v", what, k.server, err)
	}
	k.pause = moved.Sub(at)
	if err := c.Restart(i); err != nil {
		t.Fatal(err)
	}
	k.restartedAfter = time.Since(at)
	if _, err := c.WaitMetaLeader(time.Minute); err != nil {
		t.Fatal(err)
	}
	return k
}

// target is a server to shut down: what it leads, and which server leads it now (-1: none).
type target struct {
	what   string
	leader func() int
}

func streamLeader(c *testenv.Cluster, stream string) target {
	return target{"leader of " + stream, func() int { return c.StreamLeader(stream) }}
}

// recordsLeaderApart is the leader of AMR_RECORDS once it is not the meta leader: leaderships
// gather on the server that stays up while the others restart, so the stream's leader is asked
// to step down first if it leads the meta group too, and the stream's own failover is tested
// apart from the meta group's.
func recordsLeaderApart(t *testing.T, c *testenv.Cluster) target {
	t.Helper()
	if c.StreamLeader(topology.StreamRecords) == c.MetaLeader() {
		if err := c.StepDownStream(topology.StreamRecords); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, time.Minute, "a leader of AMR_RECORDS apart from the meta leader", func() bool {
			l := c.StreamLeader(topology.StreamRecords)
			return l >= 0 && l != c.MetaLeader()
		})
	}
	return target{"leader of " + topology.StreamRecords + " (not the meta leader)", func() int { return c.StreamLeader(topology.StreamRecords) }}
}

// allJobs reads every job record (Stack.Jobs reads again when a leader election loses a read).
func allJobs(ctx context.Context, t *testing.T, s *devstack.Stack) []*amrpipev1.JobRecord {
	t.Helper()
	jobs, err := s.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// liveJobs counts the jobs that are neither done nor failed.
func liveJobs(ctx context.Context, t *testing.T, s *devstack.Stack) (live, all int) {
	t.Helper()
	jobs := allJobs(ctx, t, s)
	for _, j := range jobs {
		if j.GetState() != amrpipev1.JobState_JOB_STATE_DONE && j.GetState() != amrpipev1.JobState_JOB_STATE_FAILED {
			live++
		}
	}
	return live, len(jobs)
}

// TestClusterExportSurvivesLeaderKills runs an export on a 3-node JetStream cluster (every stream,
// bucket and object store R3; every stage connected with the three URLs) and, while jobs run,
// shuts down the JetStream meta leader, then the leader of AMR_RECORDS (each restarted once the
// export moved again). Downstream must then hold every object of the ground truth exactly once,
// and every job must be done. With AMRPIPE_CLUSTER=full (make cluster) it runs two replicas of
// every stage at half the export speed, adds the leader of a stream that does not lead the meta
// group, and kills the meta leader and the leader of AMR_MANIFESTS again while the jobs the probes
// planned (the biggest) export.
func TestClusterExportSurvivesLeaderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end on a 3-node JetStream cluster")
	}
	full := os.Getenv("AMRPIPE_CLUSTER") == "full"
	begin := time.Now()
	c := testenv.StartCluster(t, 3)
	s := start(t, func(o *devstack.Options) {
		o.NATSURL, o.StreamReplicas = c.URL(), 3
		// Slow enough that the kills land while jobs export.
		o.Rate = 300
		if full {
			o.Replicas, o.Rate = 2, 150
		}
	})
	t.Logf("cluster and stack up in %s (servers %v)", time.Since(begin).Round(time.Millisecond), c.URLs())
	m := monitorRecords(t, c.URL())
	p := plan(s, "cluster", false)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := s.Submit(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := m.movedSince(ctx, 0); err != nil {
		t.Fatalf("no records: %v", err)
	}
	kill := func(tg target) {
		t.Helper()
		// A kill tests something only while a job is live. The first jobs can all end while the
		// export recovers from the kill before (a meta leader's took 5 s in one run); the jobs
		// the probes plan then come after them, so a gap between the two is waited out.
		live, all := liveJobs(ctx, t, s)
		wait := time.Now()
		for ; live == 0 && time.Since(wait) < 3*time.Minute; live, all = liveJobs(ctx, t, s) {
			time.Sleep(200 * time.Millisecond)
		}
		if waited := time.Since(wait); waited > time.Second {
			t.Logf("waited %s for a live job before shutting down the %s", waited.Round(time.Millisecond), tg.what)
		}
		i := tg.leader()
		if i < 0 {
			t.Logf("no %s to shut down", tg.what)
			return
		}
		got := killLeader(ctx, t, c, m, tg.what, i, tg.leader)
		t.Logf("shut down %s %s (meta leader too: %v) with %d of %d jobs live: new leader after %s, records again after %s, restarted after %s",
			tg.what, got.server, got.alsoMeta, live, all, got.election.Round(time.Millisecond), got.pause.Round(time.Millisecond),
			got.restartedAfter.Round(time.Millisecond))
		if live == 0 {
			t.Errorf("every job had ended before the %s was shut down: the kill tested nothing", tg.what)
		}
	}
	firstJobs := map[string]bool{}
	for _, j := range allJobs(ctx, t, s) {
		firstJobs[j.GetJobId()] = true
	}
	kill(target{"meta leader", c.MetaLeader})
	kill(streamLeader(c, topology.StreamRecords))
	if full {
		kill(recordsLeaderApart(t, c))
		// The probes' jobs come once the first jobs are parsed: the biggest of the export.
		testenv.Eventually(t, 5*time.Minute, "a job the probes planned running", func() bool {
			jobs, err := s.Jobs(ctx)
			if err != nil {
				return false
			}
			for _, j := range jobs {
				if !firstJobs[j.GetJobId()] && j.GetState() == amrpipev1.JobState_JOB_STATE_RUNNING {
					return true
				}
			}
			return false
		})
		kill(target{"meta leader", c.MetaLeader})
		kill(streamLeader(c, topology.StreamManifests))
	}
	// A leader kill can cost a message's AckWait (2 min) more than once: ctx (10 min) bounds it.
	if err := s.WaitIdle(ctx); err != nil {
		diagnose(t, c)
		t.Fatal(err)
	}
	checkExactlyOnce(t, s, p)
	t.Logf("export on the cluster done %s after the start", time.Since(begin).Round(time.Millisecond))
}

// diagnose logs the state of every consumer and stream, and writes every goroutine's stack to a
// file (a stage stuck in a request shows there).
func diagnose(t *testing.T, c *testenv.Cluster) {
	if f, err := os.CreateTemp("", "cluster-goroutines-*.txt"); err == nil {
		_ = pprof.Lookup("goroutine").WriteTo(f, 2)
		_ = f.Close()
		t.Logf("goroutines: %s", f.Name())
	}
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Log(err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, cs := range append(topology.Consumers(), topology.DownstreamConsumer(topology.DefaultDownstream)) {
		cons, err := js.Consumer(ctx, cs.Stream, cs.Config.Durable)
		if err != nil {
			t.Logf("consumer %s: %v", cs.Config.Durable, err)
			continue
		}
		info := cons.CachedInfo()
		t.Logf("consumer %s: pending %d ack pending %d waiting %d redelivered %d leader %s", cs.Config.Durable, info.NumPending, info.NumAckPending, info.NumWaiting, info.NumRedelivered, info.Cluster.Leader)
	}
	for _, st := range topology.Stores(topology.Options{}) {
		s, err := js.Stream(ctx, st.Stream)
		if err != nil {
			t.Logf("stream %s: %v", st.Stream, err)
			continue
		}
		info := s.CachedInfo()
		t.Logf("stream %s: msgs %d leader %s", st.Stream, info.State.Msgs, info.Cluster.Leader)
	}
}
