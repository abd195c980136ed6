package parser

import (
	"path"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// BenchmarkEncodeRecords isolates what the assembler does with each record: size it and encode
// it into its batch's payload. The records are the simulator's export of the default tenant's HR
// library (files and list items with versions, folders, role assignments, principals), parsed by
// pkg/sharepoint/manifest. "vtprotobuf" is the assembler's way (SizeVT, then appendRecord);
// "proto" is protobuf-go's, which it replaced (proto.Size, then MarshalAppend reusing the cached
// sizes). Both write the same bytes: TestFraming checks every batch against proto.Marshal.
func BenchmarkEncodeRecords(b *testing.B) {
	var recs []*amrpipev1.Record
	for _, f := range testenv.HRPackage(b) {
		recs = append(recs, parseAll(b, f.Data, "bench", path.Base(f.Name))...)
	}
	buf := make([]byte, 0, 1<<20)
	var err error
	for _, c := range []struct {
		name   string
		encode func(buf []byte, i int) ([]byte, error)
	}{
		{"vtprotobuf", func(buf []byte, i int) ([]byte, error) { return appendRecord(buf, recs[i], recs[i].SizeVT()) }},
		{"proto", func(buf []byte, i int) ([]byte, error) {
			_ = proto.Size(recs[i])
			return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, recs[i])
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				for i := range recs {
					if buf, err = c.encode(buf[:0], i); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)*float64(len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}
