// Package manifestcopy writes and reads the decrypted copies of package files in the
// amr_manifests object store (topology.ObjectManifests): the decryptor stores each file
// S2-compressed, the parser reads it back.
//
// Manifest XML compresses about eight times with S2 (the simulator's HR package: 72.5 MB to
// 8.9 MB), and S2 decodes at over a gigabyte a second. Stored as they are, every byte of a file
// crossed the server twice (stored, then delivered to the parser) and was copied on each side:
// that was a sixth of parse-and-publish's CPU. The store is held in memory
// (topology.Options.ManifestStorage), so its 1 GiB also holds eight times as many files.
package manifestcopy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// Object metadata headers of a stored copy.
const (
	// EncodingHeader says how the object's bytes encode the file: EncodingS2, or absent for the
	// file as it is (copies stored before compression, or by hand).
	EncodingHeader = "Amrpipe-Encoding"
	// EncodingS2 is the S2 stream format of github.com/klauspost/compress/s2.
	EncodingS2 = "s2"
	// SizeHeader is the file's size in bytes, before compression.
	SizeHeader = "Amrpipe-Size"
)

// Packer stores files (Store), reusing its compressors and their output buffers: a new S2
// writer allocates its block buffers, and its output grew from nothing to a few megabytes, for
// every manifest part (2 % of the demo's CPU). The zero value is ready; it is safe for concurrent
// use.
type Packer struct {
	pool sync.Pool // of *packing
}

type packing struct {
	w   *s2.Writer
	out bytes.Buffer
}

// Store writes the file read from plain as the object name of obs, compressed, and returns the
// object's info (Size gives the file's size). The file is compressed into memory before anything is
// stored (a manifest part is at most about 25 MB, so its copy a few MB): a read error of plain
// (a wrong key, a truncated blob) is returned as it is and leaves no object behind. The same file
// always yields the same object bytes, and so the same digest (one encoder goroutine): a file
// decrypted again matches what its ManifestReady announced.
func (p *Packer) Store(ctx context.Context, obs jetstream.ObjectStore, name, description string, plain io.Reader) (*jetstream.ObjectInfo, error) {
	pk, _ := p.pool.Get().(*packing)
	if pk == nil {
		pk = &packing{w: s2.NewWriter(nil, s2.WriterConcurrency(1))}
	}
	defer p.pool.Put(pk)
	pk.out.Reset()
	pk.w.Reset(&pk.out)
	n, err := io.Copy(pk.w, plain)
	if err != nil {
		return nil, err
	}
	if err := pk.w.Close(); err != nil {
		return nil, fmt.Errorf("compress %s: %w", name, err)
	}
	meta := jetstream.ObjectMeta{Name: name, Description: description,
		Headers: nats.Header{EncodingHeader: {EncodingS2}, SizeHeader: {strconv.FormatInt(n, 10)}},
		Opts:    &jetstream.ObjectMetaOptions{ChunkSize: topology.ManifestChunkSize}}
	return obs.Put(ctx, meta, &pk.out)
}

// Open returns the file that raw, the bytes of the object info describes, encodes.
func Open(info *jetstream.ObjectInfo, raw io.Reader) (io.Reader, error) {
	switch enc := info.Headers.Get(EncodingHeader); enc {
	case "":
		return raw, nil
	case EncodingS2:
		return s2.NewReader(raw), nil
	default:
		return nil, fmt.Errorf("object %s: unknown encoding %q", info.Name, enc)
	}
}

// Get opens the file the object name of obs holds. Read obj to its end for the object store's
// digest check (reading file to its end does), and close it.
func Get(ctx context.Context, obs jetstream.ObjectStore, name string) (file io.Reader, obj jetstream.ObjectResult, err error) {
	if obj, err = obs.Get(ctx, name); err != nil {
		return nil, nil, err
	}
	info, err := obj.Info()
	if err == nil {
		file, err = Open(info, obj)
	}
	if err != nil {
		_ = obj.Close() // the error is the one to report
		return nil, nil, err
	}
	return file, obj, nil
}

// Corrupt reports whether err, from reading a file Open returned, says the stored copy is corrupt:
// its S2 framing or checksums do not match (the bytes are not those that were stored).
func Corrupt(err error) bool { return errors.Is(err, s2.ErrCorrupt) || errors.Is(err, s2.ErrCRC) }

// Size is the size of the file the object info describes: its SizeHeader, else the object's.
func Size(info *jetstream.ObjectInfo) int64 {
	if n, err := strconv.ParseInt(info.Headers.Get(SizeHeader), 10, 64); err == nil && n >= 0 {
		return n
	}
	return int64(info.Size)
}
