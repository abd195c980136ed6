package testenv

// This file sets up what the tests of the progress-relay and of the stages after it need: an
// embedded JetStream with the topology, the SharePoint simulator behind httptest writing into
// Azurite, and AMR jobs created and recorded the way the submitter does (key wrapped and stored
// under the spec id before the create call, JobRecord, SubmittedJob).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	qsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/sas"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// SimToken is the simulator's bearer token in these tests.
const SimToken = "relaytest-token"

// Site is the simulator site collection the jobs read from, and Folder the folder they export (a
// few dozen files with versions: a job of about 15 events when manifests split at 8 KiB).
const (
	Site   = "/sites/small"
	Folder = "/sites/small/Shared Documents/Team-0001"
)

// World is one test's world: JetStream, the simulator, a client for it, the KEK and a job store.
type World struct {
	NATS    *JetStream
	Azurite *Azurite
	Sim     *server.Server
	SimURL  string
	SP      *spo.Client
	KEK     *keywrap.KEK
	Store   *jobstore.Store

	mu       sync.Mutex
	requests []Request
}

// Request is one REST call the simulator answered.
type Request struct {
	At     time.Time
	Method string // SharePoint method, e.g. "GetMigrationJobProgress"
	Status int
}

// StartWorld starts JetStream and a simulator (small tenant, unlimited rate, manifests split at 8 KiB,
// progress pages of 4 events) writing into az; mod adjusts the simulator's configuration.
func StartWorld(t testing.TB, az *Azurite, mod func(*server.Config)) *World {
	t.Helper()
	e := &World{NATS: StartJetStream(t), Azurite: az}
	tn, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Tenant: tn, Token: SimToken, Admin: true, Rate: 0, MaxManifestBytes: 8 << 10, ProgressPageSize: 4}
	if mod != nil {
		mod(&cfg)
	}
	if e.Sim, err = server.New(cfg); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(e.record(e.Sim.Handler()))
	t.Cleanup(func() {
		hs.Close()
		if err := e.Sim.Close(); err != nil {
			t.Error(err)
		}
	})
	e.SimURL = hs.URL
	if e.SP, err = spo.New(spo.Options{Tokens: spo.StaticToken(SimToken), UserAgent: "ISV|amrpipe|relaytest/1.0"}); err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, keywrap.KeySize)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	if e.KEK, err = keywrap.New("relaytest", kek); err != nil {
		t.Fatal(err)
	}
	if e.Store, err = jobstore.Open(context.Background(), e.NATS.JS, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// record notes every REST call the simulator answers (not the admin API); a call whose
// connection the simulator dropped (an injected fault) is noted with status 0.
func (e *World) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		note := func(status int) {
			_, rest, ok := strings.Cut(r.URL.Path, "/_api/site/")
			if !ok {
				return
			}
			method, _, _ := strings.Cut(rest, "(")
			e.mu.Lock()
			e.requests = append(e.requests, Request{At: time.Now(), Method: method, Status: status})
			e.mu.Unlock()
		}
		defer func() {
			if p := recover(); p != nil {
				note(0)
				panic(p)
			}
		}()
		h.ServeHTTP(sw, r)
		note(sw.status)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Requests returns the SharePoint calls answered so far, in order.
func (e *World) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.requests)
}

// RunWithAzurite is the body of a TestMain: it starts the Azurite all tests of the binary share into
// *az, runs them, stops Azurite and returns the exit code.
func RunWithAzurite(m *testing.M, az **Azurite) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	srv, err := StartAzurite(ctx, AzuriteOptions{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "azurite:", err)
		return 1
	}
	*az = srv
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "azurite close:", err)
		code = max(code, 1)
	}
	return code
}

// Account opens the storage account as the services see it, with the given report queue ("" for
// none).
func (e *World) Account(t testing.TB, queue string) *storage.Account {
	t.Helper()
	cfg := e.Azurite.StorageConfig()
	cfg.Queue = queue
	a, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Runtime starts a service runtime on the world's JetStream (see JetStream.Runtime).
func (e *World) Runtime(t testing.TB, name string) *svc.Runtime {
	t.Helper()
	return e.NATS.Runtime(t, name, nil)
}

// SharePointConfig is how the stages reach the world's simulator.
func (e *World) SharePointConfig() spo.Config {
	return spo.Config{UserAgent: "ISV|amrpipe|testenv/1.0", Token: SimToken, Timeout: 30 * time.Second}
}

// Deps opens the deps of a stage on a runtime of its own (a replica): the job store, the
// SharePoint caller reaching the simulator, the world's storage account and KEK, as far as the
// stage uses them. mod, when given, changes the shared configuration first (a report queue, a
// container, -max-throttle-wait).
func (e *World) Deps(t testing.TB, d stage.Def, mod func(*stage.Config)) stage.Deps {
	t.Helper()
	cfg := stage.Config{SharePoint: e.SharePointConfig(), MaxThrottleWait: stage.DefaultMaxThrottleWait,
		Storage: e.Azurite.StorageConfig()}
	if mod != nil {
		mod(&cfg)
	}
	return e.NATS.Deps(t, d, cfg, e.KEK, nil)
}

// RunStage runs fn (a stage's Run) until the returned stop is called or the test ends; stop waits for
// it and fails the test on an error.
func RunStage(t testing.TB, fn func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stage stopped with %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// Faults replaces the simulator's injected faults.
func (e *World) Faults(t testing.TB, rules ...server.Rule) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"rules": rules})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, e.SimURL+"/_spsim/faults", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+SimToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set faults: HTTP %d", resp.StatusCode)
	}
}

// JobOptions shape a job.
type JobOptions struct {
	// Plain creates the job without an encryption key.
	Plain bool
	// Queue names a report queue the simulator also posts the job's events to.
	Queue string
	// Container is the manifest container (default: one per test job).
	Container string
}

// Job is an AMR job created at the simulator, as the submitter knows it.
type Job struct {
	ID, SpecID, Site, Container, Queue string
	// Key is the job's AES key (nil for a plain job).
	Key []byte
	// ContainerSAS is the Read+Write SAS SharePoint was given (for independent checks in tests).
	ContainerSAS string
}

// CreateJob creates an export job of Folder, storing the wrapped key under a fresh spec id first,
// as the submitter does.
func (e *World) CreateJob(t testing.TB, ctx context.Context, o JobOptions) Job {
	t.Helper()
	j := Job{SpecID: "spec-" + randomHex(t, 8), Site: e.SimURL + Site, Container: o.Container, Queue: o.Queue}
	if j.Container == "" {
		j.Container = "relaytest-" + randomHex(t, 6)
	}
	var err error
	if j.ContainerSAS, err = e.Azurite.ContainerSAS(ctx, j.Container, sas.ContainerPermissions{Read: true, Write: true}, time.Hour); err != nil {
		t.Fatal(err)
	}
	req := spo.ReadJobRequest{URL: e.SimURL + Folder, ManifestContainerURI: j.ContainerSAS,
		Options: spo.ReadOptions{IncludeVersions: true}}
	if o.Queue != "" {
		if req.QueueURI, err = e.Azurite.QueueSAS(ctx, o.Queue, qsas.QueuePermissions{Add: true}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if !o.Plain {
		j.Key = make([]byte, keywrap.KeySize)
		if _, err := rand.Read(j.Key); err != nil {
			t.Fatal(err)
		}
		e.PutKey(t, ctx, j.SpecID, j.Key)
		req.EncryptionKey = j.Key
	}
	info, err := e.SP.CreateSPAsyncReadJob(ctx, j.Site, req)
	if err != nil {
		t.Fatal(err)
	}
	j.ID = info.JobID
	return j
}

// PutKey wraps and stores a job key under a spec id.
func (e *World) PutKey(t testing.TB, ctx context.Context, specID string, key []byte) {
	t.Helper()
	w, err := e.KEK.Wrap(specID, key, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Store.PutKey(ctx, specID, w); err != nil {
		t.Fatal(err)
	}
}

// Submitted is the SubmittedJob the submitter publishes for j.
func (j Job) Submitted() *amrpipev1.SubmittedJob {
	return &amrpipev1.SubmittedJob{
		JobId:     j.ID,
		Spec:      &amrpipev1.JobSpec{SpecId: j.SpecID, PlanId: "plan-relaytest", SiteUrl: j.Site, Urls: []string{Folder}},
		Container: j.Container,
		Queue:     j.Queue,
		Encrypted: j.Key != nil,
		Submitted: timestamppb.Now(),
	}
}

// Record writes the job's JobRecord as the submitter does.
func (e *World) Record(t testing.TB, ctx context.Context, j Job) {
	t.Helper()
	if _, err := e.Store.Fire(ctx, j.ID, jobstore.Accepted(j.Submitted())); err != nil {
		t.Fatal(err)
	}
}

// Submit records the job and publishes its SubmittedJob, as the submitter does.
func (e *World) Submit(t testing.TB, ctx context.Context, j Job) {
	t.Helper()
	e.Record(t, ctx, j)
	if _, err := bus.Publish(ctx, e.NATS.JS, topology.JobSubject(j.ID), j.Submitted(), j.ID); err != nil {
		t.Fatal(err)
	}
}

// Log waits for the job's JobEnd and returns its whole GetMigrationJobProgress log.
func (e *World) Log(t testing.TB, ctx context.Context, j Job) []string {
	t.Helper()
	for {
		var all []string
		token := ""
		for {
			p, err := e.SP.GetMigrationJobProgress(ctx, j.Site, j.ID, token)
			if err != nil {
				t.Fatalf("progress of %s: %v", j.ID, err)
			}
			all = append(all, p.Logs...)
			if len(p.Logs) == 0 {
				break
			}
			token = p.NextToken
		}
		if len(all) > 0 && strings.Contains(all[len(all)-1], `"Event":"JobEnd"`) {
			return all
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no JobEnd of %s: %v", j.ID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Messages returns every message stored on subjects matching filter, in stream order, decoded
// into values made by newMsg (ReadMessages), and fails the test if it cannot.
func Messages[M proto.Message](t testing.TB, ctx context.Context, js jetstream.JetStream, stream, filter string, newMsg func() M) []M {
	t.Helper()
	out, err := ReadMessages(ctx, js, stream, filter, newMsg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ReadMessages returns every message stored on subjects matching filter, in stream order, decoded
// into values made by newMsg. It reads the stream directly (no consumer), so it works on work-queue
// streams too and takes nothing away from their consumers.
func ReadMessages[M proto.Message](ctx context.Context, js jetstream.JetStream, stream, filter string, newMsg func() M) ([]M, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	var out []M
	for seq := uint64(1); ; {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s from %d: %w", stream, seq, err)
		}
		m := newMsg()
		if err := proto.Unmarshal(raw.Data, m); err != nil {
			return nil, fmt.Errorf("%s: %w", raw.Subject, err)
		}
		out = append(out, m)
		seq = raw.Sequence + 1
	}
}

// Events returns SharePoint's events relayed for a job so far, in stream order (not the
// pipeline's own AmrpipeJobChanged and AmrpipeManifestExpired).
func (e *World) Events(t testing.TB, ctx context.Context, jobID string) []*amrpipev1.RelayedEvent {
	t.Helper()
	var out []*amrpipev1.RelayedEvent
	for _, ev := range Messages(t, ctx, e.NATS.JS, topology.StreamEvents, topology.JobEventsFilter(jobID), func() *amrpipev1.RelayedEvent { return &amrpipev1.RelayedEvent{} }) {
		if n := ev.GetEvent().GetRawName(); n != topology.EventJobChanged && n != topology.EventManifestExpired {
			out = append(out, ev)
		}
	}
	return out
}

// Eventually polls cond every 20 ms until it holds or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Counter returns the value of a counter (summed over the series whose labels include the given
// ones) in a runtime's registry.
func Counter(t testing.TB, rt *svc.Runtime, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := rt.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
