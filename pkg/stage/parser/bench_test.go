package parser

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// BenchmarkParseAndPublish measures the parser stage end to end on an embedded JetStream in
// this process: package files already in the object store, one ManifestReady per file, until
// every file is folded into the job record, which happens only after all of its record batches
// were acknowledged by the stream. records/s counts the records published. Two inputs:
// "spsim" is the simulator's package for a job on the default tenant's HR library (what the
// pipeline parses in the demo: files, folders, list items with versions, role assignments,
// principals); "manifestgen" is four 8 MiB synthetic parts of heavier objects (about 2.1 KB of
// XML a record, against about 1.6 KB).
func BenchmarkParseAndPublish(b *testing.B) {
	hrSpec := &amrpipev1.JobSpec{SpecId: "spec-1", WebUrl: host + "/sites/hr", Urls: []string{host + "/sites/hr/Shared Documents"},
		Emit: amrpipev1.Emit_EMIT_ALL, EmitPrincipals: true}
	inputs := []struct {
		name  string
		files func(testing.TB) []testenv.PackageFile
		spec  *amrpipev1.JobSpec
	}{{"spsim", testenv.HRPackage, hrSpec}, {"manifestgen", generatedParts, allSpec()}}
	cases := []struct{ batch, concurrency int }{{64, 2}, {256, 2}, {1024, 2}, {256, 1}}
	for _, in := range inputs {
		files := onDisk(b, in.files(b))
		for _, c := range cases {
			b.Run(fmt.Sprintf("input=%s/batch=%d/concurrency=%d", in.name, c.batch, c.concurrency), func(b *testing.B) {
				benchParseAndPublish(b, files, in.spec, Config{BatchSize: c.batch, Concurrency: c.concurrency})
			})
		}
	}
}

// benchParseAndPublish runs b.N jobs of spec, of the package files at paths, through a parser
// with cfg.
func benchParseAndPublish(b *testing.B, paths []string, spec *amrpipev1.JobSpec, cfg Config) {
	h := newHarness(b)
	h.startParser(cfg)
	// Every job's files are stored before the clock starts, read from disk one at a time, so the
	// heap is as small as a parser's (which makes the GC run as often).
	jobs := make([][]*amrpipev1.ManifestReady, b.N)
	input := int64(0)
	for n := range jobs {
		jobID := fmt.Sprintf("bench-%08d", n)
		h.putJob(jobID, spec, "")
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			jobs[n] = append(jobs[n], h.putFile(jobID, filepath.Base(p), data))
			input += int64(len(data))
		}
	}
	runtime.GC()
	cpu0 := testenv.ProcessCPU(b)
	b.ResetTimer()
	records := int64(0)
	for _, ready := range jobs {
		for _, m := range ready {
			h.ready(m, m.GetObject())
		}
		records += h.waitParsed(ready[0].GetJobId(), len(paths)).GetRecords()
	}
	b.StopTimer()
	cpu := (testenv.ProcessCPU(b) - cpu0).Seconds()
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(records)/cpu, "records/cpu-s")
	b.ReportMetric(float64(input)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// onDisk writes files to a directory of their own and returns their paths, in order.
func onDisk(tb testing.TB, files []testenv.PackageFile) []string {
	tb.Helper()
	dir := tb.TempDir()
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(dir, path.Base(f.Name))
		if err := os.WriteFile(paths[i], f.Data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return paths
}

// generatedParts is four 8 MiB Manifest.xml parts written by manifestgen.
func generatedParts(tb testing.TB) []testenv.PackageFile {
	const files, size = 4, 8 << 20
	parts := make([]testenv.PackageFile, files)
	for i := range parts {
		parts[i] = testenv.PackageFile{Name: fmt.Sprintf("Manifest%d.xml", i), Data: generated(tb, uint64(100+i), size)}
	}
	return parts
}

// BenchmarkParseOnly is the ceiling of BenchmarkParseAndPublish on the same machine: the same
// four parts parsed by pkg/sharepoint/manifest, two at a time, records discarded (no policy, no encoding,
// no JetStream).
func BenchmarkParseOnly(b *testing.B) {
	const files, size = 4, 8 << 20
	parts := make([][]byte, files)
	for i := range parts {
		parts[i] = generated(b, uint64(100+i), size)
	}
	cpu0 := testenv.ProcessCPU(b)
	var records atomic.Int64
	for b.Loop() {
		var wg sync.WaitGroup
		for half := range 2 {
			wg.Go(func() {
				for _, data := range parts[half*files/2 : (half+1)*files/2] {
					err := manifest.Parse(context.Background(), bytes.NewReader(data), manifest.Options{},
						func(*amrpipev1.Record) error { records.Add(1); return nil })
					if err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
	}
	cpu := (testenv.ProcessCPU(b) - cpu0).Seconds()
	b.ReportMetric(float64(records.Load())/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(records.Load())/cpu, "records/cpu-s")
}

// waitParsed waits until n files of the job are folded in (watching, not polling, so the wait
// costs the benchmark nothing).
func (h *harness) waitParsed(jobID string, n int) *amrpipev1.JobRecord {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	changes, err := h.store.Watch(ctx, jobID)
	if err != nil {
		h.t.Fatal(err)
	}
	for ch := range changes {
		rec := ch.Record
		if len(rec.GetFilesParsed()) == n {
			return rec
		}
		if len(rec.GetFilesFailed()) > 0 {
			h.t.Fatalf("job %s: %v", jobID, rec.GetErrors())
		}
	}
	h.t.Fatalf("job %s: not parsed after 5 minutes", jobID)
	return nil
}

// purge drops a finished benchmark job's records and files, so the store does not grow.
func (h *harness) purge(jobID string) {
	h.t.Helper()
	ctx := context.Background()
	st, err := h.env.JS.Stream(ctx, topology.StreamRecords)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(topology.RecordSubject(jobID))); err != nil {
		h.t.Fatal(err)
	}
	list, err := h.objects.List(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, o := range list {
		if err := h.objects.Delete(ctx, o.Name); err != nil {
			h.t.Fatal(err)
		}
	}
}
