package manifestcopy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/manifestcopy"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// read is what a reader of the store gets back from the object name.
func read(t *testing.T, ctx context.Context, obs jetstream.ObjectStore, name string) ([]byte, *jetstream.ObjectInfo) {
	t.Helper()
	file, obj, err := manifestcopy.Get(ctx, obs, name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = obj.Close() }()
	data, err := io.ReadAll(file)
	if err != nil {
		t.Fatal(err)
	}
	info, err := obj.Info()
	if err != nil {
		t.Fatal(err)
	}
	return data, info
}

func TestStoredCopies(t *testing.T) {
	env := testenv.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obs, err := env.JS.ObjectStore(ctx, topology.ObjectManifests)
	if err != nil {
		t.Fatal(err)
	}
	hr := testenv.HRPackage(t)
	var part []byte // the largest manifest part of the simulator's HR package
	for _, f := range hr {
		if len(f.Data) > len(part) {
			part = f.Data
		}
	}

	// One packer for all: its compressor and buffer are reused from one file to the next.
	var packer manifestcopy.Packer
	var digest string // of part, stored

	t.Run("a manifest part comes back whole, smaller in the store", func(t *testing.T) {
		info, err := packer.Store(ctx, obs, "job/Manifest.xml", "decrypted", bytes.NewReader(part))
		if err != nil {
			t.Fatal(err)
		}
		if got := manifestcopy.Size(info); got != int64(len(part)) {
			t.Errorf("Size(info) = %d, want %d", got, len(part))
		}
		if info.Size*4 > uint64(len(part)) {
			t.Errorf("%d bytes stored for a %d-byte manifest: not compressed", info.Size, len(part))
		}
		got, _ := read(t, ctx, obs, "job/Manifest.xml")
		if !bytes.Equal(got, part) {
			t.Fatalf("read back %d bytes, not the %d stored", len(got), len(part))
		}
	})

	t.Run("the same file gives the same digest", func(t *testing.T) {
		// A file decrypted again must match the digest its ManifestReady announced.
		a, err := packer.Store(ctx, obs, "job/a.xml", "", bytes.NewReader(part))
		if err != nil {
			t.Fatal(err)
		}
		b, err := packer.Store(ctx, obs, "job/b.xml", "", bytes.NewReader(part))
		if err != nil {
			t.Fatal(err)
		}
		if a.Digest != b.Digest {
			t.Errorf("digests %s and %s of one file", a.Digest, b.Digest)
		}
		digest = a.Digest
	})

	t.Run("a read error stores nothing", func(t *testing.T) {
		bad := errors.New("wrong key")
		_, err := packer.Store(ctx, obs, "job/bad.xml", "", io.MultiReader(bytes.NewReader(part[:1<<20]), iotest.ErrReader(bad)))
		if !errors.Is(err, bad) {
			t.Fatalf("Store = %v, want the reader's error", err)
		}
		if _, err := obs.GetInfo(ctx, "job/bad.xml"); !errors.Is(err, jetstream.ErrObjectNotFound) {
			t.Fatalf("object after a failed store: %v", err)
		}
		// The failed file leaves nothing in the packer: the next one is stored as before.
		again, err := packer.Store(ctx, obs, "job/again.xml", "", bytes.NewReader(part))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := read(t, ctx, obs, "job/again.xml"); !bytes.Equal(got, part) || again.Digest != digest {
			t.Fatalf("after a failed store: %d bytes read back (want %d), digest %s (want %s)", len(got), len(part), again.Digest, digest)
		}
	})

	t.Run("a copy stored as it is reads as it is", func(t *testing.T) {
		if _, err := obs.PutBytes(ctx, "job/plain.xml", part); err != nil {
			t.Fatal(err)
		}
		got, info := read(t, ctx, obs, "job/plain.xml")
		if !bytes.Equal(got, part) || manifestcopy.Size(info) != int64(len(part)) {
			t.Fatalf("plain object: %d bytes, size %d; want %d", len(got), manifestcopy.Size(info), len(part))
		}
	})

	t.Run("an unknown encoding is an error", func(t *testing.T) {
		meta := jetstream.ObjectMeta{Name: "job/zstd.xml", Headers: nats.Header{manifestcopy.EncodingHeader: {"zstd"}}}
		if _, err := obs.Put(ctx, meta, bytes.NewReader(part[:100])); err != nil {
			t.Fatal(err)
		}
		info, err := obs.GetInfo(ctx, "job/zstd.xml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := manifestcopy.Open(info, bytes.NewReader(nil)); err == nil {
			t.Fatal("Open of an unknown encoding succeeded")
		}
	})
}
