package parser

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// publisher sends a file's batches; a *bus.AsyncPublisher, whose Flush the caller waits on.
type publisher interface {
	Publish(ctx context.Context, subject string, m proto.Message, msgID string) error
}

// framing fixes how one file's records become RecordBatches. Boundaries depend only on the
// records (count and encoded size), so a file parsed again after a crash yields the same
// batches under the same message ids "<jobID>/<file>/<batch>".
type framing struct {
	jobID, specID, file string
	// size is the most records per batch; maxBytes the most encoded record bytes per batch.
	size, maxBytes int
}

// BatchID is the Nats-Msg-Id of a file's batch, the downstream de-duplication key.
func BatchID(jobID, file string, batch uint32) string {
	return fmt.Sprintf("%s/%s/%d", jobID, file, batch)
}

// fileOutput is what one parsed file yielded.
type fileOutput struct {
	kind     manifest.FileKind
	parsed   int64                    // records the parser yielded
	verdicts [len(verdictNames)]int64 // by verdict; verdicts[publish] were published
	counts   map[string]int64         // published records by object type
	batches  uint32                   // batches published
	probe    *probeScan               // what a probe job's file lists; nil for other jobs
}

// chunk hands records from the parsing goroutine to the batching one; eof marks the end of a
// file that parsed to its end (a file that failed ends without it, and its open batch is dropped).
type chunk struct {
	recs []*amrpipev1.Record
	eof  bool
}

const chunkLen = 64

// parseAndPublish parses r, applies pol, observes every record for a probe (probe may be nil)
// and publishes the published records in batches through pub: parsing runs in this goroutine,
// sizing and encoding in another, so a file keeps two cores busy. Batches closed before a
// parse error stay published (no batch of the file says last); the open one is not sent.
func parseAndPublish(ctx context.Context, r io.Reader, pol *policy, probe *probeScan, fr framing, pub publisher) (*fileOutput, error) {
	out := &fileOutput{counts: map[string]int64{}, probe: probe}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 16)
	assembled := make(chan error, 1)
	go func() {
		n, err := assemble(ctx, chunks, fr, pub)
		out.batches = n
		if err != nil {
			cancel() // stops the parsing loop below
		}
		assembled <- err
	}()

	p := manifest.NewParser(r, manifest.Options{JobID: fr.jobID, SourceFile: fr.file})
	perr := func() error {
		recs := make([]*amrpipev1.Record, 0, chunkLen)
		send := func(c chunk) error {
			select {
			case chunks <- c:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for {
			rec, err := p.Next()
			if errors.Is(err, io.EOF) {
				return send(chunk{recs: recs, eof: true})
			}
			if err != nil {
				// The batches the records so far close are published: the same ones each time.
				return errors.Join(err, send(chunk{recs: recs}))
			}
			out.parsed++
			probe.observe(rec)
			v := pol.decide(rec)
			out.verdicts[v]++
			if v != publish {
				continue
			}
			out.counts[rec.GetObjectType()]++
			if recs = append(recs, rec); len(recs) == chunkLen {
				if err := send(chunk{recs: recs}); err != nil {
					return err
				}
				recs = make([]*amrpipev1.Record, 0, chunkLen)
			}
		}
	}()
	close(chunks)
	aerr := <-assembled
	out.kind = p.Kind()
	if aerr != nil { // a publish failed (the parse stopped because of it)
		return out, aerr
	}
	if perr != nil {
		return out, fmt.Errorf("parse %s: %w", fr.file, perr)
	}
	return out, nil
}

// assemble frames the records it receives into batches and publishes each once it is closed:
// a batch closes when the next record does not fit, so only the batch open at eof is the last.
// A file without published records still gets one empty last batch, so consumers see it was
// processed. It returns the number of batches published.
func assemble(ctx context.Context, in <-chan chunk, fr framing, pub publisher) (uint32, error) {
	subject := topology.RecordSubject(fr.jobID)
	cur := &amrpipev1.RecordBatch{JobId: fr.jobID, SourceFile: fr.file, SpecId: fr.specID}
	size := 0 // encoded bytes of cur's records
	send := func(last bool) error {
		cur.Last = last
		if err := pub.Publish(ctx, subject, cur, BatchID(fr.jobID, fr.file, cur.GetBatch())); err != nil {
			return err
		}
		cur = &amrpipev1.RecordBatch{JobId: fr.jobID, SourceFile: fr.file, SpecId: fr.specID, Batch: cur.GetBatch() + 1,
			Records: make([]*amrpipev1.Record, 0, len(cur.GetRecords()))}
		size = 0
		return nil
	}
	var err error
	for c := range in {
		for _, rec := range c.recs {
			if err != nil {
				break // drain: the parsing side stops at its next send
			}
			n := proto.Size(rec)
			n += protowire.SizeTag(5) + protowire.SizeVarint(uint64(n)) // as a RecordBatch.records entry
			if n > fr.maxBytes {
				err = &bus.Permanent{Reason: fmt.Sprintf("%s: record %d (%s %s) encodes to %d bytes, over the batch limit of %d (raise the server's max_payload)",
					fr.file, rec.GetSequence(), rec.GetObjectType(), rec.GetObjectId(), n, fr.maxBytes)}
				break
			}
			if len(cur.Records) > 0 && (len(cur.Records) == fr.size || size+n > fr.maxBytes) {
				if err = send(false); err != nil {
					break
				}
			}
			cur.Records = append(cur.Records, rec)
			size += n
		}
		if c.eof && err == nil {
			err = send(true)
		}
	}
	return cur.GetBatch(), err
}
