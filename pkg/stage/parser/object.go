package parser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// errObjectGone: the decrypted file is not (or no longer) in the object store: its TTL expired, it
// was deleted once its file was published, or a server restart emptied the store (it is held in
// memory, topology.Options.ManifestStorage). The file is still in Azure.
var errObjectGone = errors.New("decrypted object gone from " + topology.ObjectManifests)

// chunkIdle is how long a read waits for the next chunk of an object before it looks whether the
// object is still there (a chunk purged under a reader never comes).
const chunkIdle = 2 * time.Second

// readStall is how long a read waits for the next chunk of an object that is still there before
// it gives up with a retryable error: after a cluster's stream leader changed, an ordered
// consumer was seen to deliver nothing more, and the handler would have waited for its deadline.
// A retry opens a new consumer and resumes after the batches already published.
const readStall = 30 * time.Second

// objectReader streams one object of the amr_manifests store chunk by chunk, straight from the
// messages that hold them, through an ordered consumer of the store's stream (JetStream's object
// store layout, ADR-20: stream OBJ_<bucket>, chunks on $O.<bucket>.C.<nuid>).
//
// ObjectStore.Get does the same through a pipe and computes the object's SHA-256 as it goes; the
// parser skips both. The hash would only catch what cannot happen unnoticed: the store is in memory
// (on disk, JetStream checks every message against its own checksum as it loads it), every S2
// block of the copy carries a CRC of its content (pkg/pipeline/manifestcopy), the object's digest
// is compared with the one the decryptor announced (sameContent), and the reader checks the number
// of chunks and bytes against the object's metadata. Hashing each 25 MB file again cost
// about 8 % of the parse-and-publish CPU.
type objectReader struct {
	info   *jetstream.ObjectInfo
	gone   func(context.Context) bool // whether the object is gone or replaced
	ctx    context.Context
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
	stop   func() bool
	js     jetstream.JetStream
	stream string
	cur    []byte
	read   uint64
	chunks uint32
	last   time.Time // when the last chunk came (or the read began)
}

// openObject opens the named object of bucket for reading; errObjectGone when there is none.
func openObject(ctx context.Context, js jetstream.JetStream, objects jetstream.ObjectStore, bucket, name string) (*objectReader, error) {
	info, err := objects.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) || topology.ManifestsGone(ctx, js, err) {
		return nil, errObjectGone
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", name, err)
	}
	if info.NUID == "" {
		return nil, fmt.Errorf("object %s: %w", name, jetstream.ErrBadObjectMeta)
	}
	r := &objectReader{info: info, ctx: ctx, js: js, stream: "OBJ_" + bucket,
		gone: func(ctx context.Context) bool {
			now, err := objects.GetInfo(ctx, name)
			return errors.Is(err, jetstream.ErrObjectNotFound) || err == nil && now.NUID != info.NUID
		}}
	if info.Size == 0 {
		return r, nil
	}
	r.cons, err = js.OrderedConsumer(ctx, r.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"$O." + bucket + ".C." + info.NUID}})
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", name, err)
	}
	// A few chunks ahead (512 KiB each), not the default 500. (Not PullMaxBytes: it sizes the
	// client's buffer channel for a million messages, an 8 MB allocation per file.)
	if r.it, err = r.cons.Messages(jetstream.PullMaxMessages(8)); err != nil {
		return nil, fmt.Errorf("object %s: %w", name, err)
	}
	r.stop = context.AfterFunc(ctx, r.it.Stop)
	return r, nil
}

// Info is the object's metadata as the read started.
func (r *objectReader) Info() *jetstream.ObjectInfo { return r.info }

func (r *objectReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.read >= r.info.Size {
			if r.chunks != r.info.Chunks {
				return 0, fmt.Errorf("object %s: %d bytes in %d chunks, its metadata says %d chunks", r.info.Name, r.read, r.chunks, r.info.Chunks)
			}
			return 0, io.EOF
		}
		if r.last.IsZero() {
			r.last = time.Now()
		}
		msg, err := r.it.Next(jetstream.NextMaxWait(chunkIdle))
		switch {
		case errors.Is(err, nats.ErrTimeout):
			if r.gone(r.ctx) {
				return 0, fmt.Errorf("object %s after %d of %d bytes: %w", r.info.Name, r.read, r.info.Size, errObjectGone)
			}
			if waited := time.Since(r.last); waited > readStall {
				return 0, &bus.Retryable{Err: fmt.Errorf("object %s: no chunk for %s after %d of %d bytes", r.info.Name, waited.Round(time.Second), r.read, r.info.Size)}
			}
			continue // the server is slow, the object is there
		case err != nil && r.ctx.Err() != nil:
			return 0, r.ctx.Err()
		case err != nil:
			return 0, fmt.Errorf("object %s: %w", r.info.Name, err)
		}
		r.cur, r.last = msg.Data(), time.Now()
		r.chunks++
		r.read += uint64(len(r.cur))
		if r.read > r.info.Size {
			return 0, fmt.Errorf("object %s: more than its %d bytes", r.info.Name, r.info.Size)
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the reading and deletes the consumer (an ordered consumer would otherwise linger for
// its inactive threshold).
func (r *objectReader) Close() error {
	if r.it == nil {
		return nil
	}
	r.stop()
	r.it.Stop()
	if err := bus.DropReader(r.ctx, r.js, r.stream, r.cons); err != nil {
		return fmt.Errorf("object %s: %w", r.info.Name, err)
	}
	return nil
}
