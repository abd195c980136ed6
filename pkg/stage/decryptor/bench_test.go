package decryptor_test

import (
	"bytes"
	"context"
	"crypto/rand"
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
	rt := e.Runtime(b, "decryptor")
	j := testenv.Job{ID: "7d9e2c1a-3b4f-4a5e-8c6d-1e2f3a4b5c6d", SpecID: "spec-bench", Site: e.SimURL + testenv.Site, Container: "bench"}
	key := bytes.Repeat([]byte{0x24}, 32)
	e.PutKey(b, ctx, j.SpecID, key)
	e.Record(b, ctx, j)
	plain := make([]byte, size)
	if _, err := rand.Read(plain); err != nil {
		b.Fatal(err)
	}
	plain[0] = '<'
	name := j.ID + "/Manifest.xml"
	putEncrypted(b, ctx, e, j.Container, name, key, plain)
	plain = nil
	startDecryptor(b, e, rt)

	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		publishEvent(b, ctx, e, j.ID, uploadEvent(j.ID, j.SpecID, name), fmt.Sprint("bench-", i))
		testenv.Eventually(b, time.Minute, "the file decrypted", func() bool {
			return testenv.Counter(b, rt, "amr_decryptor_manifests_total", nil) >= float64(i+1)
		})
	}
}
