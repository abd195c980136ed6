package inventorysink_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/downstream/inventorysink"
	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// failFirst fails the first n transactions (a database that is briefly down), then writes.
type failFirst struct {
	*inventory.Pass
	n atomic.Int64
}

func (f *failFirst) Ingest(ctx context.Context, recs []*amrpipev1.Record) error {
	if f.n.Add(-1) >= 0 {
		return errors.New("database unavailable")
	}
	return f.Pass.Ingest(ctx, recs)
}

// TestSinkIngestsTheStreamAndAcksOnlyCommittedBatches publishes a simulator export as record
// batches (one of them twice, as a parser re-publishing after a crash would, and one that does not
// decode) and runs the sink on the default downstream consumer while its first transaction fails:
// the inventory ends up holding every content object of the export once, the failed batches came
// back (they were not acknowledged), nothing is left pending on the consumer, and the undecodable
// batch is a dead letter.
func TestSinkIngestsTheStreamAndAcksOnlyCommittedBatches(t *testing.T) {
	env := testenv.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := tenant.ReadOptions{IncludeVersions: true, IncludePermission: true}
	tn, targets, recs := smallExport(t, ctx, opts)
	truth, err := testenv.Truth(ctx, tn, targets, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	batches := batchesOf("job-1", recs)
	publish := func(i int, id string) {
		if _, err := bus.Publish(ctx, env.JS, topology.RecordSubject("job-1"), batches[i], id); err != nil {
			t.Fatal(err)
		}
	}
	for i := range batches {
		publish(i, "job-1/Manifest.xml/"+strconv.Itoa(i))
	}
	publish(3, "job-1/Manifest.xml/again") // a second copy beyond the duplicate window
	garbage := nats.NewMsg(topology.RecordSubject("job-1"))
	garbage.Data = []byte("not a record batch")
	garbage.Header.Set(jetstream.MsgIDHeader, "job-1/garbage")
	if _, err := env.JS.PublishMsg(ctx, garbage); err != nil {
		t.Fatal(err)
	}

	store, pass := beginPass(t, ctx, true)
	in := &failFirst{Pass: pass}
	in.n.Store(1)
	sink := inventorysink.New(in, inventorysink.Options{})
	// Every batch (the repeated one included) committed; the failed ones came back for it.
	runUntilCommitted(t, ctx, env, sink, int64(len(recs)+len(batches[3].Records)), "every batch")
	if err := pass.End(ctx, true); err != nil {
		t.Fatal(err)
	}
	got := map[testenv.Object]int{}
	if err := store.Objects(ctx, "contoso.sharepoint.com", inventory.Filter{}, func(o *inventory.Object) error {
		got[testenv.Object{Type: o.Type, ID: o.ID}]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.Diff(got, truth); err != nil {
		t.Error(err)
	}
	dl := env.DeadLetters(t, inventorysink.Stage)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want the undecodable batch", len(dl))
	}
}

// smallExport is the simulator's small tenant, its targets and their export as job-1.
func smallExport(t *testing.T, ctx context.Context, opts tenant.ReadOptions) (*tenant.Tenant, []string, []*amrpipev1.Record) {
	t.Helper()
	tn, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	targets := testenv.SmallTargets(func(s string) string { return s })
	recs, err := testenv.ExportRecords(ctx, tn, "job-1", targets, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tn, targets, recs
}

// beginPass opens a new SQLite inventory (closed when the test ends) and begins a full pass of the
// small site, with permissions or without.
func beginPass(t *testing.T, ctx context.Context, permissions bool) (*inventory.Store, *inventory.Pass) {
	t.Helper()
	store, err := inventory.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pass, err := store.BeginPass(ctx, inventory.PassInfo{Tenant: "contoso.sharepoint.com", Scope: "/sites/small", Kind: inventory.Full, Permissions: permissions})
	if err != nil {
		t.Fatal(err)
	}
	return store, pass
}

// runUntilCommitted runs sink over the records stream until it has committed want records (what:
// whose) and the consumer has nothing pending, then stops it; Run must return no error, and the
// sink must have committed exactly want records.
func runUntilCommitted(t *testing.T, ctx context.Context, env *testenv.JetStream, sink *inventorysink.Sink, want int64, what string) {
	t.Helper()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sink.Run(rctx, &inventorysink.JetStreamSource{JS: env.JS}) }()
	testenv.Eventually(t, 30*time.Second, what+" committed", func() bool { return sink.Records() >= want })
	waitNothingPending(t, ctx, env)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := sink.Records(); got != want {
		t.Errorf("sink committed %d records, want the %d of %s", got, want, what)
	}
}

// waitNothingPending waits until the default downstream consumer has nothing left to deliver or
// to be acknowledged.
func waitNothingPending(t *testing.T, ctx context.Context, env *testenv.JetStream) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "the consumer has nothing pending", func() bool {
		info, err := env.JS.Consumer(ctx, topology.StreamRecords, topology.DefaultDownstream)
		if err != nil {
			return false
		}
		ci, err := info.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
}

// batchesOf frames recs as the parser does at its default size: record batches of 256 from
// Manifest.xml, numbered from 0.
func batchesOf(jobID string, recs []*amrpipev1.Record) []*amrpipev1.RecordBatch {
	var out []*amrpipev1.RecordBatch
	for off := 0; off < len(recs); off += 256 {
		out = append(out, &amrpipev1.RecordBatch{JobId: jobID, SourceFile: "Manifest.xml", Batch: uint32(len(out)), Records: recs[off:min(off+256, len(recs))]})
	}
	return out
}

// collides stands for two objects whose keys collide (inventory.KeyCollisionError): a batch that
// holds the object named id fails whenever it is written, as the inventory fails it.
type collides struct {
	*inventory.Pass
	id string
}

func (c *collides) Ingest(ctx context.Context, recs []*amrpipev1.Record) error {
	for _, r := range recs {
		if r.GetObjectId() == c.id {
			return &inventory.KeyCollisionError{Tenant: "contoso.sharepoint.com", A: r.GetObjectType() + " " + c.id, B: "SPFile 00000000-0000-0000-0000-000000000000"}
		}
	}
	return c.Pass.Ingest(ctx, recs)
}

// TestBatchTheInventoryCannotHoldIsDeadLettered: a batch whose objects the inventory can never
// hold (two objects with one key) is dead-lettered at once with the reason, while the batches
// committed with it in one group commit are written: the inventory holds every other batch's
// objects and nothing is left pending.
func TestBatchTheInventoryCannotHoldIsDeadLettered(t *testing.T) {
	env := testenv.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, _, recs := smallExport(t, ctx, tenant.ReadOptions{})
	batches := batchesOf("job-1", recs)
	bad := batches[2]
	badID := bad.Records[len(bad.Records)/2].GetObjectId()
	for i, b := range batches {
		if _, err := bus.Publish(ctx, env.JS, topology.RecordSubject("job-1"), b, "job-1/Manifest.xml/"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	store, pass := beginPass(t, ctx, false)
	// A long linger: every batch is in the first group commit.
	sink := inventorysink.New(&collides{Pass: pass, id: badID}, inventorysink.Options{Linger: 2 * time.Second})
	runUntilCommitted(t, ctx, env, sink, int64(len(recs)-len(bad.Records)), "every other batch")
	dl := env.DeadLetters(t, inventorysink.Stage)
	if len(dl) != 1 || !strings.Contains(dl[0].GetReason(), badID) || !strings.Contains(dl[0].GetReason(), "same 64-bit key") {
		t.Fatalf("dead letters %v, want the batch holding %s, with the reason", dl, badID)
	}
	if err := pass.End(ctx, true); err != nil {
		t.Fatal(err)
	}
	inBad := map[string]bool{}
	for _, r := range bad.Records {
		inBad[r.GetObjectId()] = true
	}
	n := 0
	if err := store.Objects(ctx, "contoso.sharepoint.com", inventory.Filter{}, func(o *inventory.Object) error {
		if inBad[o.ID] {
			t.Errorf("object %s %s of the dead-lettered batch is in the inventory", o.Type, o.ID)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("the inventory holds nothing")
	}
}
