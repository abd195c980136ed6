package parser

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/export"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// discard acknowledges every batch at once and keeps nothing.
type discard struct{ batches, bytes int }

func (d *discard) PublishMsg(_ context.Context, msg *nats.Msg, done func(*jetstream.PubAck, error)) error {
	d.batches++
	d.bytes += len(msg.Data)
	done(&jetstream.PubAck{Sequence: uint64(d.batches)}, nil)
	return nil
}

// memSink keeps the package files the simulator's export writes.
type memSink map[string][]byte

func (m memSink) Put(_ context.Context, name string, data []byte, _ map[string]*string) error {
	m[name] = bytes.Clone(data)
	return nil
}

// emissionFolders is the number of URLs of the largest multi-URL job SharePoint takes.
const emissionFolders = 5000

// simulatedExport writes, with the simulator's exporter, what AMR writes for a job on targets of a
// library of emissionFolders folders with one file each, and returns its manifest (one part) and
// the job's spec.
func simulatedExport(tb testing.TB, targets []string) ([]byte, *amrpipev1.JobSpec) {
	tb.Helper()
	tn, err := tenant.New(tenant.Profile{Seed: 7, OddNameEvery: -1, Sites: []tenant.SiteSpec{{
		URL: "/sites/bench", Title: "Bench", Users: 4, Groups: 3,
		Webs: []tenant.WebSpec{{Title: "Bench", Lists: []tenant.ListSpec{{
			Title: "Docs", Template: tenant.TemplateDocumentLibrary,
			Root: tenant.FolderSpec{Folders: []tenant.FolderSpec{{Name: "Folder", Repeat: emissionFolders, Files: 1}}},
		}}}},
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	spec := &amrpipev1.JobSpec{SpecId: "bench", WebUrl: host + "/sites/bench", Emit: amrpipev1.Emit_EMIT_ALL, Multi: len(targets) > 1}
	var ts []tenant.Target
	var roots []export.Root
	for _, u := range targets {
		tg, err := tn.Resolve(u)
		if err != nil {
			tb.Fatal(err)
		}
		ts = append(ts, tg)
		roots = append(roots, export.Root{ID: tg.ID, Type: string(tg.Kind), ParentID: tg.ParentID, URL: u, WebID: tg.WebID, WebURL: tg.WebURL})
		spec.Urls = append(spec.Urls, host+u)
	}
	sink := memSink{}
	w, err := export.NewWriter(context.Background(), sink, export.Options{JobID: "bench-job", SiteURL: host + "/sites/bench",
		MaxManifestBytes: 1 << 30, Targets: roots})
	if err != nil {
		tb.Fatal(err)
	}
	if err := tn.Walk(context.Background(), ts, tenant.ReadOptions{}, w.Add); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(nil, nil); err != nil {
		tb.Fatal(err)
	}
	return sink["bench-job/Manifest.xml"], spec
}

func folderURLs() []string {
	urls := make([]string, emissionFolders)
	for i := range urls {
		urls[i] = fmt.Sprintf("/sites/bench/Docs/Folder-%04d", i+1)
	}
	return urls
}

// BenchmarkEmissionURLs parses and frames (without JetStream) the simulator's export of a
// 5,000-URL job, one URL per folder of a library, against a 1-URL job on the library, which
// yields the same folders and files: the job's time must not depend on its number of URLs.
// ms/job is the time to parse, decide and encode the whole job.
func BenchmarkEmissionURLs(b *testing.B) {
	for _, c := range []struct {
		name    string
		targets []string
	}{{"urls=1", []string{"/sites/bench/Docs"}}, {fmt.Sprintf("urls=%d", emissionFolders), folderURLs()}} {
		data, spec := simulatedExport(b, c.targets)
		b.Run(c.name, func(b *testing.B) {
			fr := framing{jobID: "bench-job", specID: "bench", file: "Manifest.xml", size: DefaultBatchSize, maxBytes: DefaultMaxBatchBytes}
			var out *fileOutput
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var err error
				if out, err = parseAndPublish(context.Background(), bytes.NewReader(data), newPolicy(spec), nil, fr, nil, &discard{}, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/job")
			b.ReportMetric(float64(out.verdicts[publish]), "records/job")
		})
	}
}

// BenchmarkEmissionDecide isolates the Emit policy on the records of the 5,000-URL job: the index
// against the linear scan over the job's URLs it replaced (the lookup before this change).
func BenchmarkEmissionDecide(b *testing.B) {
	data, spec := simulatedExport(b, folderURLs())
	recs := parseAll(b, data, "bench-job", "Manifest.xml")
	pol := newPolicy(spec)
	for _, c := range []struct {
		name string
		root func(string) (int, bool)
	}{{"index", pol.rootIndex.lookup}, {"linear", func(p string) (int, bool) { return linearRoot(pol.roots, p) }}} {
		b.Run(c.name, func(b *testing.B) {
			found := 0
			for b.Loop() {
				found = 0
				for _, r := range recs {
					if _, path := pol.classify(r); path != "" {
						if _, ok := c.root(path); ok {
							found++
						}
					}
				}
			}
			if found < 2*emissionFolders {
				b.Fatalf("%d records under the job's URLs", found)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/job")
		})
	}
}
