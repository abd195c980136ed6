package parser

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/testenv"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// BenchmarkEncodeRecords isolates what the assembler does with each record: size it and encode
// it into its batch's payload. The records are the simulator's export of the default tenant's HR
// library (files and list items with versions, folders, role assignments, principals), parsed by
// pkg/sharepoint/manifest. "vtprotobuf" is the assembler's way (SizeVT, then appendRecord);
// "proto" is protobuf-go's, which it replaced (proto.Size, then MarshalAppend reusing the cached
// sizes). Both write the same bytes: TestFraming checks every batch against proto.Marshal.
func BenchmarkEncodeRecords(b *testing.B) {
	tn, err := tenant.New(tenant.DefaultProfile())
	if err != nil {
		b.Fatal(err)
	}
	recs, err := testenv.ExportRecords(context.Background(), tn, "bench", []string{"/sites/hr/Shared Documents"},
		tenant.ReadOptions{IncludeVersions: true, IncludePermission: true, IncludeSecurity: true})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1<<20)
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
