package decryptor_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// BenchmarkDecryptManifest measures one 25 MB package file from the upload event to the stored
// object: download from Azurite, decrypt, put into the (embedded, in-process) object store.
func BenchmarkDecryptManifest(b *testing.B) {
	const size = 25 << 20
	ctx := context.Background()
	e := testenv.StartWorld(b, storage, nil)
	key := bytes.Repeat([]byte{0x24}, 32)
	j := testenv.Job{ID: "7d9e2c1a-3b4f-4a5e-8c6d-1e2f3a4b5c6d", SpecID: "spec-bench", Site: e.SimURL + testenv.Site, Container: "bench", Key: key}
	e.PutKey(b, ctx, j.SpecID, key)
	e.Record(b, ctx, j)
	line := []byte(`<SPObject Id="e72e2015-91a4-4d07-ae9a-7b6c76918d2a" ObjectType="SPFile" Url="Shared Documents/File_0905-1653-31240.docx" />` + "\n")
	plain := bytes.Repeat(line, size/len(line)+1)[:size]
	name := j.ID + "/Manifest.xml"
	putEncrypted(b, ctx, e, j.Container, name, key, plain)
	plain = nil
	rt := runDecryptor(b, e)

	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		publishEvent(b, ctx, e, j.ID, uploadEvent(j.ID, j.SpecID, name), fmt.Sprint("bench-", i))
		testenv.Eventually(b, time.Minute, "the file decrypted", func() bool {
			return testenv.Counter(b, rt, "amr_decryptor_manifests_total", nil) >= float64(i+1)
		})
	}
}
