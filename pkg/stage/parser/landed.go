package parser

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// resumePoint is where a parse of a file starts publishing.
type resumePoint struct {
	mark    progressMark
	resumed bool // an earlier parse of the file left progress
	// skip holds the ids (and stream sequences) of batches beyond mark that are on the stream
	// already: they are framed again, to keep the numbering, and not published.
	skip map[string]uint64
	// old frames the batches that start before oldUntil the way the skipped ones were framed,
	// when that differs from the configured framing.
	old      *framing
	oldUntil uint64
}

// landedBatch is one of the file's batches found on the stream.
type landedBatch struct {
	id          string
	fingerprint string
	from, to    uint64
	streamSeq   uint64
}

// scanWait bounds the wait for the next header while the landed batches are read: the count to
// read is known when the reading starts, so a wait means the stream dropped messages meanwhile.
const scanWait = 5 * time.Second

// findLanded returns fr's file's batches on amr.records.<jobID> after stream sequence after, read
// headers only (their ids say which records they hold).
func findLanded(ctx context.Context, js jetstream.JetStream, fr framing, after uint64) ([]landedBatch, error) {
	// A reader that holds nothing back (topology.ReaderConsumer): an ordered consumer cannot read
	// the records stream once it has replicas (interest retention requires every consumer to have
	// the stream's).
	cfg := topology.ReaderConsumer(topology.RecordSubject(fr.jobID))
	cfg.DeliverPolicy, cfg.OptStartSeq, cfg.HeadersOnly = jetstream.DeliverByStartSequencePolicy, after+1, true
	cons, err := js.CreateConsumer(ctx, topology.StreamRecords, cfg)
	if err != nil {
		return nil, fmt.Errorf("look for published batches of %s: %w", fr.file, err)
	}
	defer func() { _ = bus.DropReader(ctx, js, topology.StreamRecords, cons) }()
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return nil, fmt.Errorf("look for published batches of %s: %w", fr.file, err)
	}
	defer it.Stop()
	pending := uint64(0)
	if info := cons.CachedInfo(); info != nil {
		pending = info.NumPending
	}
	prefix := fr.jobID + "/" + fr.file + "/"
	var out []landedBatch
	for ; pending > 0; pending-- {
		msg, err := it.Next(jetstream.NextMaxWait(scanWait))
		if errors.Is(err, nats.ErrTimeout) {
			break // fewer messages than counted: the stream removed some meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("look for published batches of %s: %w", fr.file, err)
		}
		lb, ok := parseBatchID(msg.Headers().Get(jetstream.MsgIDHeader), prefix)
		if !ok {
			continue
		}
		if meta, err := msg.Metadata(); err == nil {
			lb.streamSeq = meta.Sequence.Stream
		}
		out = append(out, lb)
	}
	if info := cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(ctx, topology.StreamRecords, info.Name) // else it lingers a few minutes
	}
	return out, nil
}

// parseBatchID reads "<prefix><fingerprint>/<from>-<to>"; ids of another file, or in the form
// before fingerprints, are not ours.
func parseBatchID(id, prefix string) (landedBatch, bool) {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return landedBatch{}, false
	}
	fp, rng, ok := strings.Cut(rest, "/")
	if !ok {
		return landedBatch{}, false
	}
	f, t, ok := strings.Cut(rng, "-")
	if !ok {
		return landedBatch{}, false
	}
	from, err1 := strconv.ParseUint(f, 10, 64)
	to, err2 := strconv.ParseUint(t, 10, 64)
	if err1 != nil || err2 != nil || to < from {
		return landedBatch{}, false
	}
	return landedBatch{id: id, fingerprint: fp, from: from, to: to}, true
}

// absorb advances the resume point over the landed batches that continue it, and arranges for
// those further on (after a batch that did not land) to be skipped.
func (rp *resumePoint) absorb(landed []landedBatch, fr framing) {
	for {
		var next *landedBatch
		for i, l := range landed {
			if l.from == rp.mark.next && (next == nil || l.to > next.to) {
				next = &landed[i]
			}
		}
		if next == nil {
			break
		}
		rp.mark = progressMark{next: next.to, batch: rp.mark.batch + 1, streamSeq: next.streamSeq}
		if next.to == next.from { // an empty batch: the last of a file that publishes nothing
			rp.mark.complete = true
			return
		}
	}
	fps := map[string]bool{}
	for _, l := range landed {
		if l.from > rp.mark.next {
			if rp.skip == nil {
				rp.skip = map[string]uint64{}
			}
			rp.skip[l.id] = l.streamSeq
			fps[l.fingerprint] = true
			rp.oldUntil = max(rp.oldUntil, l.to)
		}
	}
	if len(fps) != 1 {
		return // none, or several framings at once: the configured one goes on (some may repeat)
	}
	for fp := range fps {
		if fp == fr.fingerprint() {
			return
		}
		if old, ok := fr.withFingerprint(fp); ok {
			rp.old = &old
		}
	}
}
