package testenv

// This file runs a JetStream cluster of embedded nats-server instances on loopback, in the test
// process, the way nats-server's own cluster tests do: each server has its client and route ports
// on 127.0.0.1 and routes to all the others; together they are one cluster (one JetStream domain,
// so no domain is configured: clients of the cluster use the default $JS.API).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// ServerStoreLimit is the JetStream storage budget of each test server (embedded, or a
// nats-server process a harness starts). JetStream reserves every
// stream's MaxBytes against it (an accounting, not disk space taken), and the topology's defaults
// add up to about 14 GiB; the default budget (75% of the free disk) would fail on a small disk.
const ServerStoreLimit = 64 << 30

// ServerMemoryLimit is the same for memory storage, where the topology keeps its decrypted
// manifests (1 GiB by default, topology.Options.ManifestStorage); deploy/nats/nats.conf gives 2 GB.
const ServerMemoryLimit = 2 << 30

// Cluster is a running JetStream cluster of embedded servers. Servers can be shut down and
// restarted (with their store) to play a node's crash.
type Cluster struct {
	t    testing.TB
	opts []*server.Options

	mu      sync.Mutex
	servers []*server.Server // nil while shut down
}

// ClusterName is the name of every test cluster.
const ClusterName = "amrpipe-test"

// StartCluster starts n servers forming one JetStream cluster and waits until they have elected
// a meta leader; they are shut down when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports, err := freePorts(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	routes := make([]string, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i])
	}
	c := &Cluster{t: t, servers: make([]*server.Server, n)}
	dir := t.TempDir()
	for i := range n {
		c.opts = append(c.opts, &server.Options{
			ServerName:         fmt.Sprintf("n%d", i+1),
			Host:               "127.0.0.1",
			Port:               ports[i],
			JetStream:          true,
			StoreDir:           filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			JetStreamMaxStore:  ServerStoreLimit,
			JetStreamMaxMemory: ServerMemoryLimit,
			Cluster:            server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: ports[n+i]},
			Routes:             server.RoutesFromStr(strings.Join(routes, ",")),
			NoLog:              true,
			NoSigs:             true,
		})
	}
	t.Cleanup(c.close)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = c.start(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitMetaLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.waitPlacement(n, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitPlacement waits until the cluster places a stream of the given replicas. A meta leader that
// lists every peer may still hold one as offline until its first statistics arrive, and refuses
// an R3 stream meanwhile ("no suitable peers for placement, peer offline", seen on CI); a test's
// first topology apply would fail on it.
func (c *Cluster) waitPlacement(replicas int, timeout time.Duration) error {
	nc, js, err := Connect(c.URL(), "testenv-placement-probe")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: "TESTENV_PLACEMENT_PROBE", Subjects: []string{"testenv.placement.probe"},
		Replicas: replicas, Storage: jetstream.MemoryStorage}
	for {
		// Each try has its own deadline: a request whose reply is lost (a busy machine, a meta
		// leader still settling) would otherwise hold the whole wait (seen on CI).
		tctx, tcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateStream(tctx, cfg)
		tcancel()
		if err == nil {
			return js.DeleteStream(ctx, cfg.Name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no R%d stream placed within %s: %w", replicas, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct free ports of 127.0.0.1 (free when asked: the servers bind them
// right after).
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) start(i int) error {
	s, err := server.NewServer(c.opts[i].Clone())
	if err != nil {
		return fmt.Errorf("server %s: %w", c.opts[i].ServerName, err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("server %s not ready after 20s", c.opts[i].ServerName)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return nil
}

// Len is the number of servers.
func (c *Cluster) Len() int { return len(c.opts) }

// Name is server i's name (n1, n2, ...).
func (c *Cluster) Name(i int) string { return c.opts[i].ServerName }

// URLs are the client URLs of every server (running or not: clients reconnect to the others).
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.opts))
	for i, o := range c.opts {
		out[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return out
}

// URL is URLs comma-joined, the form of -nats-url.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// Server is server i, nil while it is shut down.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Shutdown stops server i as a crash would (its store stays for Restart).
func (c *Cluster) Shutdown(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts server i again on its store and ports.
func (c *Cluster) Restart(i int) error {
	if c.Server(i) != nil {
		return fmt.Errorf("server %s is running", c.Name(i))
	}
	return c.start(i)
}

// MetaLeader is the index of the JetStream meta leader, -1 when there is none.
func (c *Cluster) MetaLeader() int {
	for i := range c.opts {
		if s := c.Server(i); s != nil && s.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// StreamLeader is the index of the server leading stream (of the default account), -1 when none.
func (c *Cluster) StreamLeader(stream string) int {
	for i := range c.opts {
		if s := c.Server(i); s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// StepDownStream asks stream's leader to hand its leadership to another server.
func (c *Cluster) StepDownStream(stream string) error {
	i := c.StreamLeader(stream)
	if i < 0 {
		return fmt.Errorf("stream %s has no leader", stream)
	}
	return c.Server(i).JetStreamStepdownStream(server.DEFAULT_GLOBAL_ACCOUNT, stream)
}

// WaitMetaLeader waits until a meta leader is elected, every running server is current with it
// and the leader counts every running server as an online peer (before that, placing an R3
// stream fails with "no suitable peers for placement"), and returns the leader's index.
func (c *Cluster) WaitMetaLeader(timeout time.Duration) (int, error) {
	var leader int
	err := waitFor(timeout, func() bool {
		if leader = c.MetaLeader(); leader < 0 {
			return false
		}
		running := 0
		for i := range c.opts {
			s := c.Server(i)
			if s == nil {
				continue
			}
			if !s.JetStreamIsCurrent() {
				return false
			}
			running++
		}
		ls := c.Server(leader)
		return ls != nil && len(ls.JetStreamClusterPeers()) >= running
	})
	if err != nil {
		return -1, fmt.Errorf("no JetStream meta leader: %w", err)
	}
	return leader, nil
}

// WaitStreamLeader waits until stream has a leader and returns its index.
func (c *Cluster) WaitStreamLeader(stream string, timeout time.Duration) (int, error) {
	var leader int
	if err := waitFor(timeout, func() bool { leader = c.StreamLeader(stream); return leader >= 0 }); err != nil {
		return -1, fmt.Errorf("no leader of stream %s: %w", stream, err)
	}
	return leader, nil
}

func waitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (c *Cluster) close() {
	var wg sync.WaitGroup
	for i := range c.opts {
		wg.Go(func() { c.Shutdown(i) })
	}
	wg.Wait()
}
