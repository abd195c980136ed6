package inventory_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// BenchmarkIngest measures a first full pass into an empty inventory: the simulator's export of
// the default tenant's HR library and onboarding list (about 48K records: files and their list
// items with versions, folders, role assignments, users and groups), parsed by
// pkg/sharepoint/manifest, ingested in transactions of batch records (256 is one RecordBatch of
// the parser's default size; 16384 is the inventory sink's group commit) by two callers at once,
// as the sink's two committers, then End (change set included). records/s counts the records
// ingested.
func BenchmarkIngest(b *testing.B) {
	recs := testenv.HRRecords(b)
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{256, 4096, 16384} {
			b.Run(fmt.Sprintf("%s/batch=%d", backend, batch), func(b *testing.B) {
				n := 0
				var cpu time.Duration
				for b.Loop() {
					b.StopTimer()
					s := emptyStore(b, backend)
					b.StartTimer()
					cpu0 := cpuTime(b, backend)
					ingestAll(b, s, "/sites/hr", recs, batch)
					// Closing is timed too: SQLite's last checkpoint (what is left in the
					// write-ahead log goes to the database file) is part of the ingest's cost.
					if err := s.Close(); err != nil {
						b.Fatal(err)
					}
					cpu += cpuTime(b, backend) - cpu0
					n += len(recs)
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
				// CPU of this process and of the PostgreSQL server while ingesting: what the records
				// cost whatever else runs on the machine.
				b.ReportMetric(float64(n)/cpu.Seconds(), "records/cpu-s")
			})
		}
	}
}

// cpuTime is the user and system time of this process so far, and of the PostgreSQL server for
// that backend.
func cpuTime(tb testing.TB, backend string) time.Duration {
	d := testenv.ProcessCPU(tb)
	if backend == "postgres" {
		server, err := pg.CPUTime()
		if err != nil {
			tb.Fatal(err)
		}
		d += server
	}
	return d
}

// ingestAll writes recs as one full pass of scope, in groups of batch records.
func ingestAll(b *testing.B, s *inventory.Store, scope string, recs []*amrpipev1.Record, batch int) {
	ctx := context.Background()
	p, err := s.BeginPass(ctx, inventory.PassInfo{Tenant: testTenant, Scope: scope, Kind: inventory.Full, Permissions: true})
	if err != nil {
		b.Fatal(err)
	}
	// Two callers at once, as the inventory sink's two committers: one converts its group's
	// records while the other's transaction runs.
	groups := make(chan []*amrpipev1.Record)
	var callers sync.WaitGroup
	for range 2 {
		callers.Go(func() {
			for g := range groups {
				if err := p.Ingest(ctx, g); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for off := 0; off < len(recs); off += batch {
		groups <- recs[off:min(off+batch, len(recs))]
	}
	close(groups)
	callers.Wait()
	if b.Failed() {
		b.FailNow()
	}
	if err := p.End(ctx, true); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkIngestGrowing measures one tenant's inventory as it grows to about a million
// records: 23 first passes of new scopes, each the records of BenchmarkIngest under new random
// object ids (the key index is then written at random, as a real tenant's GUIDs write it),
// ingested like BenchmarkIngest at the sink's 16,384 records a transaction. It reports the rate
// of the first pass (an empty inventory) and of the last three (into an inventory of 0.96M to
// 1.05M records); docs/inventory.md ("Sizing") has the curve in between.
func BenchmarkIngestGrowing(b *testing.B) {
	const rounds = 23
	base := testenv.HRRecords(b)
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			var first, last time.Duration
			var nFirst, nLast int
			for b.Loop() {
				b.StopTimer()
				s := emptyStore(b, backend)
				for round := range rounds {
					recs := withNewIDs(base, round)
					b.StartTimer()
					start := time.Now()
					ingestAll(b, s, fmt.Sprintf("/sites/hr%02d", round), recs, 16384)
					took := time.Since(start)
					b.StopTimer()
					b.Logf("%s: pass %2d, into %7d records: %6.0f records/s", backend, round+1, round*len(recs), float64(len(recs))/took.Seconds())
					switch {
					case round == 0:
						first, nFirst = first+took, nFirst+len(recs)
					case round >= rounds-3:
						last, nLast = last+took, nLast+len(recs)
					}
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(nFirst)/first.Seconds(), "records/s-empty")
			b.ReportMetric(float64(nLast)/last.Seconds(), "records/s-at-1M")
		})
	}
}

// withNewIDs clones recs, giving each 36-character object id another, derived from it and
// round, random-looking GUID.
func withNewIDs(recs []*amrpipev1.Record, round int) []*amrpipev1.Record {
	out := make([]*amrpipev1.Record, len(recs))
	for i, r := range recs {
		c := proto.Clone(r).(*amrpipev1.Record)
		if id := c.GetObjectId(); len(id) == 36 {
			h := sha256.Sum256([]byte(strconv.Itoa(round) + "/" + id))
			x := hex.EncodeToString(h[:16])
			c.ObjectId = x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
		}
		out[i] = c
	}
	return out
}

// BenchmarkEndPermissions measures ending a second pass of 20,000 files, 5,000 of them under
// role assignments of their own, after a first pass that gave the other 15,000 theirs: End
// sets the flag of the 5,000 and clears that of the 15,000 (and records both as permission
// changes), as a tenant whose permissions were reorganised does.
func BenchmarkEndPermissions(b *testing.B) {
	const files, secured = 20000, 5000
	ctx := context.Background()
	file := func(i int) *amrpipev1.Record {
		return rec("SPFile", fmt.Sprintf("file-%05d", i), fmt.Sprintf("/sites/hr/Docs/f%05d.txt", i), nil)
	}
	pass := func(withRA func(i int) bool) []*amrpipev1.Record {
		var recs []*amrpipev1.Record
		for i := range files {
			recs = append(recs, file(i))
			if withRA(i) {
				recs = append(recs, roleAssignment(fmt.Sprintf("scope-%05d", i), fmt.Sprintf("file-%05d", i), [2]int64{1073741829, 7}))
			}
		}
		return recs
	}
	firstPass, secondPass := pass(func(i int) bool { return i >= secured }), pass(func(i int) bool { return i < secured })
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				s := emptyStore(b, backend)
				var p *inventory.Pass
				var err error
				for i, recs := range [][]*amrpipev1.Record{firstPass, secondPass} {
					if p, err = s.BeginPass(ctx, inventory.PassInfo{Tenant: testTenant, Scope: "/sites/hr", Kind: inventory.Full, Permissions: true}); err != nil {
						b.Fatal(err)
					}
					if err := p.Ingest(ctx, recs); err != nil {
						b.Fatal(err)
					}
					if i == 0 {
						if err := p.End(ctx, true); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StartTimer()
				if err := p.End(ctx, true); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := p.Info().Counts.Changes; got != files {
					b.Fatalf("%d changes, want %d (every file's permissions)", got, files)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
