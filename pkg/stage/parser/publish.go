package parser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// publisher sends a file's batches; a *bus.AsyncPublisher, whose Flush the caller waits on. done
// is called once per message, in publishing order, with the acknowledgement or the failure.
type publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, done func(*jetstream.PubAck, error)) error
}

// framingVersion changes whenever the records a file yields or the way they are framed change
// (a parser release that reads a field it skipped before): batch ids of another version never
// match, so a file re-parsed across the change cannot have new records dropped as repeats.
const framingVersion = 1

// framing fixes how one file's records become RecordBatches: a batch closes when the next record
// it would publish does not fit (size records, maxBytes of encoded records). Boundaries depend only
// on the records and these bounds, so a file parsed again from a batch boundary yields the same
// batches under the same ids.
type framing struct {
	jobID, specID, file string
	// size is the most records per batch; maxBytes the most encoded record bytes per batch.
	size, maxBytes int
	// content is the file's SHA-256 (hex) as ManifestReady announced it ("" when unknown).
	content string
}

// fingerprint names what decides which records go into which batch: the framing version, the
// bounds and the file's content. It is the third part of the file's batch ids.
func (f framing) fingerprint() string {
	fp := "v" + strconv.Itoa(framingVersion) + ".n" + strconv.Itoa(f.size) + ".b" + strconv.Itoa(f.maxBytes)
	if len(f.content) >= 12 {
		fp += "." + f.content[:12]
	}
	return fp
}

// withFingerprint returns f with the bounds a fingerprint of the same version and content names.
func (f framing) withFingerprint(fp string) (framing, bool) {
	parts := strings.Split(fp, ".")
	if len(parts) < 3 || parts[0] != "v"+strconv.Itoa(framingVersion) {
		return framing{}, false
	}
	size, err1 := strconv.Atoi(strings.TrimPrefix(parts[1], "n"))
	maxBytes, err2 := strconv.Atoi(strings.TrimPrefix(parts[2], "b"))
	if err1 != nil || err2 != nil || size <= 0 || maxBytes <= 0 || maxBytes > f.maxBytes {
		return framing{}, false // not publishable under today's bound either
	}
	g := f
	g.size, g.maxBytes = size, maxBytes
	if g.fingerprint() != fp {
		return framing{}, false // another content
	}
	return g, true
}

// BatchID is the Nats-Msg-Id of the batch of a file that holds the published records with
// sequences in [from, to): "<jobID>/<file>/<fingerprint>/<from>-<to>". The range tiles the file's
// sequences (a batch ends where the next one starts; the last ends at the number of records), so
// two batches with one id hold the same records.
func BatchID(jobID, file, fingerprint string, from, to uint64) string {
	return jobID + "/" + file + "/" + fingerprint + "/" + strconv.FormatUint(from, 10) + "-" + strconv.FormatUint(to, 10)
}

// fileOutput is what one parsed file yielded.
type fileOutput struct {
	kind     manifest.FileKind
	parsed   int64                    // records the parser yielded
	verdicts [len(verdictNames)]int64 // by verdict; verdicts[publish] were published (or had been)
	counts   map[string]int64         // published records by object type
	bytes    int64                    // File.file_size over the published records
	versions int64                    // earlier versions of files and items in the published records
	batches  uint32                   // batches framed; sent + skipped
	sent     uint32                   // batches published by this parse
	probe    *probeScan               // what a probe job's file lists; nil for other jobs
}

// chunk hands records from the parsing goroutine to the batching one; eof marks the end of a
// file that parsed to its end (a file that failed ends without it, and its open batch is dropped)
// and end is then the number of records the file yielded.
type chunk struct {
	recs []*amrpipev1.Record
	eof  bool
	end  uint64
}

const chunkLen = 64

// parseAndPublish parses r, applies pol, observes every record for a probe (probe may be nil)
// and publishes the published records from rp on in batches through pub, reporting each batch on
// the stream to prog (nil: not tracked). Parsing runs in this goroutine, framing and encoding in
// another, so a file keeps two cores busy. Batches closed before a parse error stay published (no
// batch of the file says last); the open one is not sent.
func parseAndPublish(ctx context.Context, r io.Reader, pol *policy, probe *probeScan, fr framing, rp *resumePoint, pub publisher, prog *fileProgress) (*fileOutput, error) {
	out := &fileOutput{counts: map[string]int64{}, probe: probe}
	if rp == nil {
		rp = &resumePoint{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 16)
	assembled := make(chan error, 1)
	a := newAssembler(fr, rp, pub, prog)
	go func() {
		err := a.run(ctx, chunks)
		out.batches, out.sent = a.batches, a.sent
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
				return send(chunk{recs: recs, eof: true, end: uint64(out.parsed)})
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
			out.bytes += rec.GetFile().GetFileSize()
			out.versions += int64(len(rec.GetFile().GetVersions()) + len(rec.GetListItem().GetVersions()))
			if rec.GetSequence() < rp.mark.next {
				continue // on the stream since an earlier parse: counted, not sent again
			}
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

// recordBatchType is the payload type of record batches.
var recordBatchType = (&amrpipev1.RecordBatch{}).ProtoReflect().Descriptor().FullName()

// assembler frames the records it receives into batches and publishes each once it is closed: a
// batch closes when the next record does not fit, so only the batch open at eof is the last. A
// file without published records still gets one empty last batch, so consumers see it was
// processed.
//
// Each record is sized and encoded once, straight into its batch's payload: the batch is never a
// RecordBatch message (proto.Marshal would size every record a second time). The payload is the
// encoding proto.Marshal gives the RecordBatch (fields in number order), its header fields written
// in front of the records when the batch closes, into room kept free for them. Payload buffers
// come back for the next batches once the stream acknowledged them.
type assembler struct {
	fr, old framing
	rp      *resumePoint
	pub     publisher
	prog    *fileProgress
	subject string
	head    int         // room for the header fields before the records
	free    chan []byte // payload buffers the stream acknowledged
	grown   int         // the largest payload so far: the size to give a new buffer
	scratch []byte

	// The open batch.
	buf     []byte // head bytes of room, then the encoded records
	n       int    // its records
	from    uint64 // the sequence its range starts at
	number  uint32
	batches uint32 // closed: sent or skipped
	sent    uint32
}

func newAssembler(fr framing, rp *resumePoint, pub publisher, prog *fileProgress) *assembler {
	a := &assembler{fr: fr, rp: rp, pub: pub, prog: prog, subject: topology.RecordSubject(fr.jobID),
		free: make(chan []byte, DefaultMaxPending), from: rp.mark.next, number: rp.mark.batch}
	if rp.old != nil {
		a.old = *rp.old
	}
	a.head = headerSize(fr.jobID) + headerSize(fr.file) + 1 + protowire.SizeVarint(1<<32-1) + 2 // + batch, last
	a.buf = a.newBuffer()
	return a
}

func headerSize(s string) int { return 1 + protowire.SizeBytes(len(s)) }

// framingAt is the framing of a batch starting at sequence from.
func (a *assembler) framingAt(from uint64) *framing {
	if a.rp.old != nil && from < a.rp.oldUntil {
		return &a.old
	}
	return &a.fr
}

// newBuffer returns a payload buffer with the room for the header: an acknowledged one, else a new
// one as large as the largest payload so far (a batch of a few records does not zero 768 KiB).
func (a *assembler) newBuffer() []byte {
	select {
	case b := <-a.free:
		return b[:a.head]
	default:
	}
	return make([]byte, a.head, max(a.grown, 64<<10))
}

// run frames what comes in until in is closed; it returns the first publish error.
func (a *assembler) run(ctx context.Context, in <-chan chunk) error {
	var err error
	for c := range in {
		for _, rec := range c.recs {
			if err != nil {
				break // drain: the parsing side stops at its next send
			}
			err = a.add(ctx, rec)
		}
		if c.eof && err == nil && !a.rp.mark.complete && (a.n > 0 || a.rp.mark.next == 0) {
			err = a.send(ctx, c.end, true)
		}
	}
	return err
}

// add appends a record, closing the open batch first when it does not fit.
func (a *assembler) add(ctx context.Context, rec *amrpipev1.Record) error {
	n := rec.SizeVT()
	entry := protowire.SizeTag(5) + protowire.SizeVarint(uint64(n)) + n // as a RecordBatch.records entry
	if f := a.framingAt(a.from); a.n > 0 && (a.n == f.size || len(a.buf)-a.head+entry > f.maxBytes) {
		if err := a.send(ctx, rec.GetSequence(), false); err != nil {
			return err
		}
	}
	if f := a.framingAt(a.from); entry > f.maxBytes {
		return &bus.Permanent{Reason: fmt.Sprintf("%s: record %d (%s %s) encodes to %d bytes, over the batch limit of %d (raise the server's max_payload)",
			f.file, rec.GetSequence(), rec.GetObjectType(), rec.GetObjectId(), entry, f.maxBytes)}
	}
	a.buf = protowire.AppendTag(a.buf, 5, protowire.BytesType)
	a.buf = protowire.AppendVarint(a.buf, uint64(n))
	var err error
	if a.buf, err = appendRecord(a.buf, rec, n); err != nil {
		return fmt.Errorf("encode record %d of %s: %w", rec.GetSequence(), a.fr.file, err)
	}
	a.n++
	return nil
}

// appendRecord appends the encoding of rec, whose size n is (rec.SizeVT()), to buf. vtprotobuf's
// generated encoder (proto/gen/*_vtproto.pb.go) writes the same bytes as proto.Marshal in less
// than half the time (BenchmarkEncodeRecords). It does not check that strings are UTF-8, as
// proto.Marshal does: the manifest scanner has checked every value it read already.
func appendRecord(buf []byte, rec *amrpipev1.Record, n int) ([]byte, error) {
	at := len(buf)
	buf = slices.Grow(buf, n)[:at+n]
	_, err := rec.MarshalToSizedBufferVT(buf[at:])
	return buf, err
}

// send closes the open batch, ending its range at to, and publishes it unless it is on the
// stream already; the next batch starts at to.
func (a *assembler) send(ctx context.Context, to uint64, last bool) error {
	f := a.framingAt(a.from)
	id := BatchID(f.jobID, f.file, f.fingerprint(), a.from, to)
	number := a.number
	if seq, ok := a.rp.skip[id]; ok {
		a.prog.ack(number, to, last, seq)
		a.buf = a.buf[:a.head]
	} else {
		payload := a.encodeHeader(last)
		msg, err := bus.NewEncodedMsg(ctx, a.subject, recordBatchType, payload, id)
		if err != nil {
			return err
		}
		buf := a.buf
		a.grown = max(a.grown, cap(buf))
		err = a.pub.PublishMsg(ctx, msg, func(ack *jetstream.PubAck, err error) {
			if err != nil {
				return // the client library may still hold buf (a retry): leave it to it
			}
			a.prog.ack(number, to, last, ack.Sequence)
			select {
			case a.free <- buf:
			default:
			}
		})
		if err != nil {
			return err
		}
		a.sent++
		a.buf = a.newBuffer()
	}
	a.batches++
	a.n, a.from, a.number = 0, to, a.number+1
	return nil
}

// encodeHeader writes the batch's other fields around its records and returns the payload: fields
// 1-4 in the room before the records, spec_id (6) after them, as proto.Marshal orders them.
func (a *assembler) encodeHeader(last bool) []byte {
	h := a.scratch[:0]
	if a.fr.jobID != "" {
		h = protowire.AppendTag(h, 1, protowire.BytesType)
		h = protowire.AppendString(h, a.fr.jobID)
	}
	if a.fr.file != "" {
		h = protowire.AppendTag(h, 2, protowire.BytesType)
		h = protowire.AppendString(h, a.fr.file)
	}
	if a.number != 0 {
		h = protowire.AppendTag(h, 3, protowire.VarintType)
		h = protowire.AppendVarint(h, uint64(a.number))
	}
	if last {
		h = protowire.AppendTag(h, 4, protowire.VarintType)
		h = protowire.AppendVarint(h, 1)
	}
	a.scratch = h
	start := a.head - len(h)
	copy(a.buf[start:a.head], h)
	if a.fr.specID != "" {
		a.buf = protowire.AppendTag(a.buf, 6, protowire.BytesType)
		a.buf = protowire.AppendString(a.buf, a.fr.specID)
	}
	return a.buf[start:]
}
