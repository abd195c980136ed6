package export

import (
	"context"
	"fmt"
	"testing"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// discardSink counts bytes, like an upload that costs nothing.
type discardSink struct{ bytes, blobs int }

func (s *discardSink) Put(_ context.Context, _ string, data []byte, _ map[string]*string) error {
	s.bytes += len(data)
	s.blobs++
	return nil
}

// benchObjects is a library of folders and files, each with its list item, as the tenant walks it.
func benchObjects(n int) []*tenant.Object {
	objs := make([]*tenant.Object, 0, n)
	for i := 0; len(objs) < n; i++ {
		folder := fmt.Sprintf("Folder %03d", i/50)
		name := fmt.Sprintf("Document %06d.docx", i)
		rel := "Shared Documents/" + folder + "/" + name
		fileID := fmt.Sprintf("e72e2015-91a4-4d07-ae9a-%012d", i)
		base := tenant.Object{ParentID: folderID, Name: name, SiteID: siteID, WebID: webID, WebURL: webURL,
			ListID: libID, ServerURL: webURL + "/" + rel, WebRelURL: rel, IntID: i + 1, ScopeID: scopeID,
			Author: 12, ModifiedBy: 18, Created: created, Modified: modified, Version: "4.0"}
		file := base
		file.Type, file.ID, file.Size = tenant.TypeFile, fileID, int64(i*1000)
		item := base
		item.Type, item.ID, item.DocType, item.DocID, item.ContentType = tenant.TypeListItem, fmt.Sprintf("9c1d2e3f-0000-4000-8000-%012d", i), "File", fileID, "0x0101"
		item.Fields = []tenant.Field{
			{Name: "Title", Type: "Text", Value: "Quarterly report " + name},
			{Name: "Department", Type: "Text", Value: "Human Resources"},
			{Name: "Pages", Type: "Number", Value: "12"},
		}
		objs = append(objs, &file, &item)
	}
	return objs
}

// BenchmarkWrite measures Add into an in-memory sink; objects/s is the figure to compare with the
// simulator's unlimited export rate (target ≥ 300K objects/s on one core).
func BenchmarkWrite(b *testing.B) {
	objs := benchObjects(4096)
	for _, bc := range []struct {
		name string
		key  []byte
	}{{"plain", nil}, {"encrypted", testKey()}} {
		b.Run(bc.name, func(b *testing.B) {
			sink := &discardSink{}
			opts := fixtureOptions()
			opts.Key = bc.key
			w, err := NewWriter(context.Background(), sink, opts)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := w.Add(objs[i%len(objs)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(nil, nil); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
			b.ReportMetric(float64(sink.bytes)/float64(b.N), "bytes/object")
		})
	}
}

// BenchmarkJobPackage measures what the simulator does for each job: a new Writer over a job's
// objects (a 25 MB part and the start of the next), then Close, into a sink that keeps nothing.
func BenchmarkJobPackage(b *testing.B) {
	objs := benchObjects(40000)
	b.ReportAllocs()
	for b.Loop() {
		writePackageTo(b, &discardSink{}, fixtureOptions(), objs, nil, nil)
	}
	b.ReportMetric(float64(b.N)*float64(len(objs))/b.Elapsed().Seconds(), "objects/s")
}
