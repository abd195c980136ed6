package parser

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Exactly once beyond the records stream's duplicate window.
//
// While a file is parsed, amr_parse_progress holds how far its records are on the stream
// (ParseProgress under "<jobID>.<file>"): the sequence below which every record the job publishes
// was acknowledged, the number of the next batch, and the stream sequence of the last batch
// recorded. The entry is created before the first batch is published and advanced from the
// acknowledgements, in order, at most every -progress-interval (one write per interval, not one per
// batch). A re-parse (a redelivery, another replica, a restart days later) reads the entry, looks on
// the stream for the file's batches published after the recorded one (headers only: their ids name
// their ranges), and publishes only the records after the last of them. Its first batch starts where
// the last acknowledged one ended, so resuming does not depend on the framing: with another
// -batch-size the rest of the file is framed anew, under ids with another fingerprint.
//
// What a crash can do, wherever it happens:
//   - before the entry is created: nothing was published; the re-parse starts afresh.
//   - between a batch's acknowledgement and the next progress write (at most -progress-interval):
//     the batch is on the stream but not recorded. The re-parse finds it by its id on the stream and
//     skips it. Only if the stream no longer holds it (deleted by its retention before the re-parse)
//     is it published again, under the same id, which the stream drops within its 2-hour duplicate
//     window; after the window a consumer sees it twice and de-duplicates by the record key
//     (job_id, source_file, sequence).
//   - while batches are in flight: the ones that landed are found as above; the others were never
//     stored and are published by the re-parse. If an earlier batch failed and a later one landed,
//     the re-parse frames that stretch the way the landed batches were framed (their ids say how),
//     skips the landed ones by id and publishes the missing ones, then goes on with its own framing.
//   - after the last acknowledgement, before the file is folded into the job: the re-parse publishes
//     nothing and folds it.
//   - after the fold: the job record lists the file; a redelivery stops there and deletes the entry
//     if it is still there.
//
// The entry is deleted once the file is folded into its job (parsed or failed); the bucket's TTL
// (AMR_MANIFESTS' max age: as long as a ManifestReady can wait to be parsed again) removes what a
// crash leaves.

// progressStore is the parser's access to amr_parse_progress.
type progressStore struct {
	kv       jetstream.KeyValue
	js       jetstream.JetStream
	interval time.Duration
	log      *slog.Logger
}

var plainFile = regexp.MustCompile(`^[-_A-Za-z0-9.]*[-_A-Za-z0-9]$`)

// progressKey is a file's key: "<jobID>.<file>", the file base64url-encoded after "b64=" when a
// key cannot hold it as it is (a trailing dot).
func progressKey(jobID, file string) string {
	if !plainFile.MatchString(file) {
		file = "b64=" + base64.RawURLEncoding.EncodeToString([]byte(file))
	}
	return jobID + "." + file
}

// progressMark is how far a file's batches are acknowledged, as one contiguous run from its start.
type progressMark struct {
	next      uint64 // records below are on the stream
	batch     uint32 // number of the batch that starts at next
	streamSeq uint64 // stream sequence of the batch that ended at next
	complete  bool   // the last batch is on the stream
}

// begin returns where the file's publishing starts and the progress that records it: the start of
// the file for a file seen for the first time, else the recorded mark advanced over the batches
// found on the stream after it (resumePoint).
func (ps *progressStore) begin(ctx context.Context, fr framing) (*resumePoint, *fileProgress, error) {
	key := progressKey(fr.jobID, fr.file)
	fresh := &amrpipev1.ParseProgress{JobId: fr.jobID, File: fr.file, Framing: fr.fingerprint(), Sha256: fr.content, Updated: timestamppb.Now()}
	data, err := proto.Marshal(fresh)
	if err != nil {
		return nil, nil, err
	}
	rev, err := ps.kv.Create(ctx, key, data)
	if err == nil {
		return &resumePoint{}, ps.track(key, fresh, rev, progressMark{}), nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, nil, fmt.Errorf("create progress %s: %w", key, err)
	}
	e, err := ps.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil, fmt.Errorf("progress %s deleted while being created: %w", key, err) // a race: retried
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get progress %s: %w", key, err)
	}
	var p amrpipev1.ParseProgress
	if err := proto.Unmarshal(e.Value(), &p); err != nil {
		return nil, nil, fmt.Errorf("decode progress %s: %w", key, err)
	}
	if p.GetSha256() != "" && fr.content != "" && p.GetSha256() != fr.content {
		// Another content under the same name: what was recorded is not of this file. Its
		// batches carry another fingerprint, so starting afresh cannot collide with them.
		ps.log.WarnContext(ctx, "progress of another content; starting the file afresh", "job", fr.jobID, "file", fr.file,
			"recorded_sha256", p.GetSha256(), "sha256", fr.content)
		if rev, err = ps.kv.Update(ctx, key, data, e.Revision()); err != nil {
			return nil, nil, fmt.Errorf("reset progress %s: %w", key, err)
		}
		return &resumePoint{}, ps.track(key, fresh, rev, progressMark{}), nil
	}
	mark := progressMark{next: p.GetNextSequence(), batch: p.GetNextBatch(), streamSeq: p.GetStreamSequence(), complete: p.GetComplete()}
	rp := &resumePoint{mark: mark, resumed: true}
	if !mark.complete {
		landed, err := findLanded(ctx, ps.js, fr, mark.streamSeq)
		if err != nil {
			return nil, nil, err
		}
		rp.absorb(landed, fr)
	}
	p.Framing, p.Updated = fr.fingerprint(), timestamppb.Now()
	return rp, ps.track(key, &p, e.Revision(), rp.mark), nil
}

// track starts the progress of one file parse.
func (ps *progressStore) track(key string, entry *amrpipev1.ParseProgress, rev uint64, mark progressMark) *fileProgress {
	fp := &fileProgress{ps: ps, key: key, entry: entry, rev: rev, mark: mark, written: mark,
		acked: map[uint32]ackedBatch{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go fp.writer()
	return fp
}

// remove deletes a file's entry (its file is folded into the job); a missing one is fine.
func (ps *progressStore) remove(ctx context.Context, jobID, file string) error {
	key := progressKey(jobID, file)
	if _, err := ps.kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // deleted before: a second delete marker would only take room
	}
	if err := ps.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete progress %s: %w", key, err)
	}
	return nil
}

// ackedBatch is a batch acknowledged beyond the contiguous mark.
type ackedBatch struct {
	to, streamSeq uint64
	last          bool
}

// fileProgress records one parse's acknowledgements: it keeps the contiguous mark and writes it to
// the bucket, coalesced, by compare-and-set (another replica may parse the same file: the entry
// never moves back).
type fileProgress struct {
	ps    *progressStore
	key   string
	entry *amrpipev1.ParseProgress

	mu      sync.Mutex
	mark    progressMark
	acked   map[uint32]ackedBatch
	rev     uint64
	written progressMark
	gone    bool // the entry was deleted: the file was folded by another parse

	wake          chan struct{}
	stop, stopped chan struct{}
	stopOnce      sync.Once
}

// ack records that batch (ending at to, the last one when last) is on the stream at streamSeq.
// Batches may be reported out of order (a skipped one before earlier publishes are acknowledged).
func (f *fileProgress) ack(batch uint32, to uint64, last bool, streamSeq uint64) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.acked[batch] = ackedBatch{to: to, streamSeq: streamSeq, last: last}
	moved := false
	for {
		a, ok := f.acked[f.mark.batch]
		if !ok {
			break
		}
		delete(f.acked, f.mark.batch)
		f.mark = progressMark{next: a.to, batch: f.mark.batch + 1, streamSeq: a.streamSeq, complete: a.last}
		moved = true
	}
	f.mu.Unlock()
	if moved {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// writer writes the mark when it moved, at most once per interval.
func (f *fileProgress) writer() {
	defer close(f.stopped)
	last := time.Time{}
	for {
		select {
		case <-f.wake:
		case <-f.stop:
			return
		}
		if wait := f.ps.interval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-f.stop:
				t.Stop()
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := f.write(ctx); err != nil {
			f.ps.log.Debug("write parse progress", "key", f.key, "err", err)
		}
		cancel()
		last = time.Now()
	}
}

// write stores the mark unless it is stored already, or the stored entry is ahead.
func (f *fileProgress) write(ctx context.Context) error {
	f.mu.Lock()
	mark, rev, gone := f.mark, f.rev, f.gone
	f.mu.Unlock()
	if gone || mark == f.writtenMark() {
		return nil
	}
	for range 5 {
		f.entry.NextSequence, f.entry.NextBatch, f.entry.StreamSequence, f.entry.Complete = mark.next, mark.batch, mark.streamSeq, mark.complete
		f.entry.Updated = timestamppb.Now()
		data, err := proto.Marshal(f.entry)
		if err != nil {
			return err
		}
		nrev, err := f.ps.kv.Update(ctx, f.key, data, rev)
		if err == nil {
			f.mu.Lock()
			f.rev, f.written = nrev, mark
			f.mu.Unlock()
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("write progress %s: %w", f.key, err)
		}
		// Someone else wrote: never move the entry back.
		e, gerr := f.ps.kv.Get(ctx, f.key)
		if errors.Is(gerr, jetstream.ErrKeyNotFound) {
			f.mu.Lock()
			f.gone = true
			f.mu.Unlock()
			return nil
		}
		if gerr != nil {
			return fmt.Errorf("read progress %s: %w", f.key, gerr)
		}
		var cur amrpipev1.ParseProgress
		if err := proto.Unmarshal(e.Value(), &cur); err != nil {
			return fmt.Errorf("decode progress %s: %w", f.key, err)
		}
		rev = e.Revision()
		if cur.GetComplete() || cur.GetNextSequence() >= mark.next && !mark.complete {
			f.mu.Lock()
			f.rev = rev
			f.written = mark // as far as we got: nothing to add
			f.mu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("write progress %s: too many concurrent writers", f.key)
}

func (f *fileProgress) writtenMark() progressMark {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written
}

// close stops the writer; with flush it writes the mark once more (a parse that stops before the
// end leaves its resume point for the next one).
func (f *fileProgress) close(ctx context.Context, flush bool) error {
	if f == nil {
		return nil
	}
	f.stopOnce.Do(func() { close(f.stop) })
	<-f.stopped
	if !flush {
		return nil
	}
	return f.write(ctx)
}

// current is the contiguous mark so far.
func (f *fileProgress) current() progressMark {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mark
}
