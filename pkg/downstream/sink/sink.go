// Package sink is a downstream consumer of the records stream: it appends every record, once, to a
// JSON Lines file that a user can open. It is what `amrctl dev` writes and the simplest example of
// consuming amrpipe's output.
package sink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// JSONL writes records as JSON lines.
type JSONL struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	seen    map[string]bool // batch message ids already written: a redelivered batch writes nothing
	records int64
	opts    protojson.MarshalOptions
}

// Create opens (truncates) the file at path.
func Create(path string) (*JSONL, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create sink %s: %w", path, err)
	}
	return &JSONL{f: f, w: bufio.NewWriterSize(f, 1<<20), seen: map[string]bool{}, opts: protojson.MarshalOptions{UseProtoNames: true}}, nil
}

// Records is how many records were written.
func (s *JSONL) Records() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

// Write appends a batch's records unless the batch (by its message id) was written already.
func (s *JSONL) Write(msgID string, b *amrpipev1.RecordBatch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[msgID] {
		return nil
	}
	for _, r := range b.GetRecords() {
		line, err := s.opts.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode record %s: %w", r.GetObjectId(), err)
		}
		s.w.Write(line)
		s.w.WriteByte('\n')
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write sink: %w", err)
	}
	s.seen[msgID] = true
	s.records += int64(len(b.GetRecords()))
	return nil
}

// Close flushes and closes the file.
func (s *JSONL) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.w.Flush(), s.f.Close())
}

// Consume feeds every record batch of the records stream to fn, through an ephemeral reader
// (topology.ReaderConsumer: it holds no record back from the downstream consumers) from the start
// of the stream, until ctx ends. fn's message id argument is the batch's Nats-Msg-Id, the key a
// downstream consumer de-duplicates on.
func Consume(ctx context.Context, js jetstream.JetStream, fn func(msgID string, b *amrpipev1.RecordBatch) error) error {
	cons, err := js.CreateConsumer(ctx, topology.StreamRecords, topology.ReaderConsumer(topology.RecordSubject("*")))
	if err != nil {
		return fmt.Errorf("records consumer: %w", err)
	}
	defer func() { // else the server removes it a minute later
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, topology.StreamRecords, cons.CachedInfo().Name)
	}()
	// Bounded by bytes, not messages: record batches are up to ~1 MB each.
	it, err := cons.Messages(jetstream.PullMaxBytes(8 << 20))
	if err != nil {
		return fmt.Errorf("records iterator: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("next record batch: %w", err)
		}
		var b amrpipev1.RecordBatch
		if err := bus.Decode(msg, &b); err != nil {
			return fmt.Errorf("record batch %s: %w", msg.Subject(), err)
		}
		if err := fn(msg.Headers().Get(jetstream.MsgIDHeader), &b); err != nil {
			return err
		}
	}
}

// WaitRecords polls until the sink holds at least n records or ctx ends.
func (s *JSONL) WaitRecords(ctx context.Context, n int64) error {
	for s.Records() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
