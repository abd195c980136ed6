package parser

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/manifestcopy"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// handleManifest parses one package file, publishes its records and folds it into the job.
func (s *Stage) handleManifest(ctx context.Context, msg jetstream.Msg) error {
	var ready amrpipev1.ManifestReady
	if err := bus.Decode(msg, &ready); err != nil {
		return err
	}
	jobID, err := topology.SubjectJob(msg.Subject())
	if err != nil {
		return &bus.Permanent{Reason: err.Error()}
	}
	if !strings.EqualFold(ready.GetJobId(), jobID) {
		return &bus.Permanent{Reason: fmt.Sprintf("ManifestReady of job %q on the subject of job %s", ready.GetJobId(), jobID)}
	}
	file, err := topology.ManifestFile(jobID, jobID+"/"+ready.GetFile())
	if err != nil {
		return &bus.Permanent{Reason: err.Error()}
	}
	object := topology.ManifestObject(jobID, file)
	if o := ready.GetObject(); o != "" && o != object {
		return &bus.Permanent{Reason: fmt.Sprintf("ManifestReady of %s names object %q, want %q", file, sas.Redact(o), object)}
	}
	rec, _, err := s.store.Job(ctx, jobID)
	if errors.Is(err, jobstore.ErrNotFound) {
		return &bus.Retryable{Err: fmt.Errorf("file %s of job %s: %w", file, jobID, errUnknownJob)}
	}
	if err != nil {
		return err
	}
	if done := s.already(rec, file); done != nil {
		// A redelivery: the file was folded in (parsed or failed) before. The job may still
		// wait for its completion if the previous attempt stopped right after the fold.
		if done.err == nil {
			s.cleanUp(ctx, jobID, file, object)
		}
		if err := s.complete(ctx, rec); err != nil {
			return err
		}
		return done.err
	}

	ctx, span := s.span(ctx, "parse "+file, jobID, attribute.String("amr.file", file))
	defer span.End()
	start := time.Now()
	out, err := s.parse(ctx, rec, file, object, &ready)
	if errors.Is(err, errObjectGone) {
		return s.objectGone(ctx, msg, rec, file, err)
	}
	if out != nil {
		span.SetAttributes(attribute.Int64("amr.records", out.parsed), attribute.Int64("amr.published", out.verdicts[publish]),
			attribute.Int64("amr.bytes", ready.GetSize()))
		s.metrics.bytes.Add(float64(ready.GetSize()))
	}
	var perm *bus.Permanent
	if errors.As(err, &perm) {
		s.countFile(out, "failed")
		return err // fileDeadLettered records it on the job
	}
	if err != nil {
		return err
	}
	s.metrics.fileTime.Observe(time.Since(start).Seconds())
	parsed := jobstore.ParsedFile{File: file, Records: out.verdicts[publish], Counts: out.counts, Bytes: out.bytes, Versions: out.versions}
	if out.probe != nil {
		parsed.ProbeSubfolders, parsed.ProbeDirectFiles = out.probe.folders, out.probe.files
	}
	updated, err := s.store.Fire(ctx, jobID, jobstore.FileParsed(parsed))
	if err != nil {
		return err
	}
	s.cleanUp(ctx, jobID, file, object)
	s.countFile(out, "parsed")
	s.log.InfoContext(ctx, "file parsed", "job", jobID, "file", file, "kind", out.kind.String(), "records", out.parsed,
		"published", out.verdicts[publish], "batches", out.batches, "sent", out.sent, "bytes", ready.GetSize(), "seconds", time.Since(start).Seconds())
	return s.complete(ctx, updated)
}

// cleanUp removes what a parsed file leaves: its progress entry and its decrypted copy (the object
// store is a cache of Azure, not the store of record; a redelivery stops at the job record). A
// failure costs storage until the TTLs, nothing else, so it is only logged.
func (s *Stage) cleanUp(ctx context.Context, jobID, file, object string) {
	if err := s.progress.remove(ctx, jobID, file); err != nil {
		s.log.WarnContext(ctx, "remove parse progress", "job", jobID, "file", file, "err", err)
	}
	if err := s.objects.Delete(ctx, object); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		s.log.WarnContext(ctx, "delete decrypted file", "job", jobID, "file", file, "err", err)
	}
}

// repeat is the outcome of a file handled before.
type repeat struct{ err error }

// already reports a file the job record lists as parsed (nil error) or failed (the Permanent
// error again, so the redelivery is dead-lettered like the first attempt meant to).
func (s *Stage) already(rec *amrpipev1.JobRecord, file string) *repeat {
	switch {
	case slices.Contains(rec.GetFilesParsed(), file):
		s.metrics.files.WithLabelValues("unknown", "repeated").Inc()
		return &repeat{}
	case slices.Contains(rec.GetFilesFailed(), file):
		s.metrics.files.WithLabelValues("unknown", "repeated").Inc()
		reason := file + ": failed before"
		for _, e := range rec.GetErrors() {
			if strings.HasPrefix(e, file+": ") {
				reason = e
			}
		}
		return &repeat{err: &bus.Permanent{Reason: reason}}
	}
	return nil
}

// parse opens the object and publishes its records from where an earlier parse of the file left
// them; every error that a retry cannot cure is a *bus.Permanent, and a missing object is
// errObjectGone.
func (s *Stage) parse(ctx context.Context, rec *amrpipev1.JobRecord, file, object string, ready *amrpipev1.ManifestReady) (*fileOutput, error) {
	spec := rec.GetSpec()
	if spec == nil {
		return nil, &bus.Retryable{Err: fmt.Errorf("job %s has no spec recorded yet", rec.GetJobId())}
	}
	obj, err := openObject(ctx, s.deps.Runtime.JS, s.objects, topology.ObjectManifests, object)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := obj.Close(); cerr != nil {
			s.log.DebugContext(ctx, "close object", "object", object, "err", cerr)
		}
	}()
	if err := sameContent(obj.Info(), ready); err != nil {
		return nil, err
	}
	content, err := manifestcopy.Open(obj.Info(), obj)
	if err != nil {
		return nil, &bus.Permanent{Reason: err.Error()}
	}
	fr := framing{jobID: rec.GetJobId(), specID: spec.GetSpecId(), file: file, size: s.cfg.BatchSize, maxBytes: s.maxBytes,
		content: ready.GetSha256()}
	rp, prog, err := s.progress.begin(ctx, fr)
	if err != nil {
		return nil, err
	}
	if rp.resumed {
		s.metrics.resumed.Inc()
		s.log.InfoContext(ctx, "resuming a file", "job", fr.jobID, "file", file, "from_sequence", rp.mark.next, "batch", rp.mark.batch,
			"complete", rp.mark.complete, "on_stream_ahead", len(rp.skip))
	}
	pub := bus.NewAsyncPublisher(s.deps.Runtime.JS, bus.AsyncOptions{MaxPending: s.cfg.MaxPending})
	out, err := parseAndPublish(ctx, content, newPolicy(spec), newProbeScan(spec), fr, rp, pub, prog)
	// Every batch must have landed before the file counts as parsed; after a parse error the
	// landed ones are what the dead letter leaves downstream.
	cerr := pub.Close(ctx)
	// A parse that stops early records how far it got for the next one; a complete one is folded
	// next and its entry deleted.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	if perr := prog.close(fctx, err != nil || cerr != nil); perr != nil {
		s.log.WarnContext(ctx, "write parse progress", "job", fr.jobID, "file", file, "err", perr)
	}
	cancel()
	s.metrics.batches.Add(float64(out.sent))
	if manifestcopy.Corrupt(err) { // its checksums caught it: no second read needed to tell
		if !s.discard(ctx, object, err.Error()) {
			return out, &bus.Retryable{Err: fmt.Errorf("%s: the stored copy is corrupt, and deleting it failed: %w", file, err)}
		}
		return out, fmt.Errorf("%s: the stored copy is corrupt (%v; deleted, the blob is still in Azure): %w", file, err, errObjectGone)
	}
	var se *manifest.SyntaxError
	if errors.As(err, &se) {
		switch check := s.reproduces(ctx, object, se); check {
		case corruptCopy:
			return out, fmt.Errorf("%s: parse error at byte offset %d, and the stored copy does not match its digest (deleted; the blob is still in Azure): %w",
				file, se.Offset, errObjectGone)
		case readDiffers:
			return out, &bus.Retryable{Err: fmt.Errorf("%s: parse error at byte offset %d that a digest-checked read does not repeat (a bad read, not a bad file): %w",
				file, se.Offset, err)}
		}
	}
	switch {
	case errors.As(err, &se):
		return out, &bus.Permanent{Reason: sas.Redact(fmt.Sprintf("%s: parse error at byte offset %d (line %d): %s", file, se.Offset, se.Line, se.Msg)), Err: se.Err}
	case err != nil:
		return out, err
	case cerr != nil:
		return out, &bus.Retryable{Err: fmt.Errorf("records of %s: %w", file, cerr)}
	}
	for v, n := range out.verdicts[publish+1:] {
		if n > 0 {
			s.metrics.dropped.WithLabelValues(verdict(v + 1).String()).Add(float64(n))
		}
	}
	for t, n := range out.counts {
		s.metrics.records.WithLabelValues(t).Add(float64(n))
	}
	return out, nil
}

// recheck is what a digest-checked read of a file that failed to parse found.
type recheck int

const (
	reproduced  recheck = iota // the same parse error at the same offset: the file itself is bad
	readDiffers                // the read parsed differently, or could not be made: try again
	corruptCopy                // the stored copy does not match its digest: decrypt the blob again
)

// reproduces parses an object again from a read that checks the object's SHA-256 (the store's
// own Get, which the parser's reader skips), publishing nothing: a file is poison only if its own
// bytes fail to parse where the first read failed. A read that went wrong is retried instead. A
// copy whose chunks do not match the digest its description records (seen once on a 3-node
// cluster after the object store's leader was shut down, every read failing the same way) is
// deleted, so that the decryptor writes it again from the blob. Only files that fail pay for the
// second read.
func (s *Stage) reproduces(ctx context.Context, object string, first *manifest.SyntaxError) recheck {
	content, obj, err := manifestcopy.Get(ctx, s.objects, object)
	if err != nil {
		return readDiffers
	}
	defer func() { _ = obj.Close() }()
	perr := manifest.Parse(ctx, content, manifest.Options{}, func(*amrpipev1.Record) error { return nil })
	_, rerr := io.Copy(io.Discard, obj) // the digest is checked at the end of the object
	var se *manifest.SyntaxError
	switch {
	case errors.Is(rerr, jetstream.ErrDigestMismatch):
		if !s.discard(ctx, object, "it does not match its digest") {
			return readDiffers
		}
		return corruptCopy
	case rerr == nil && errors.As(perr, &se) && se.Offset == first.Offset:
		return reproduced
	}
	return readDiffers
}

// discard deletes a stored copy found corrupt (why), so that the decryptor writes it again from
// the blob; false when the delete failed.
func (s *Stage) discard(ctx context.Context, object, why string) bool {
	if err := s.objects.Delete(ctx, object); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		s.log.WarnContext(ctx, "delete a corrupt stored copy", "object", object, "why", why, "err", err)
		return false
	}
	s.log.WarnContext(ctx, "stored copy is corrupt; deleted it to decrypt the blob again", "object", object, "why", why)
	return true
}

// sameContent checks the object against the digest the decryptor announced: another content
// means the object was replaced since (a stale announcement), which a retry will not change.
func sameContent(info *jetstream.ObjectInfo, ready *amrpipev1.ManifestReady) error {
	want, herr := hex.DecodeString(ready.GetSha256())
	if herr != nil || len(want) == 0 {
		return nil // nothing to compare with
	}
	got, ok := strings.CutPrefix(info.Digest, "SHA-256=")
	if d, err := base64.URLEncoding.DecodeString(got); ok && err == nil && string(d) != string(want) {
		return &bus.Permanent{Reason: fmt.Sprintf("object %s does not hold the content ManifestReady announced (sha256 %s)", info.Name, ready.GetSha256())}
	}
	return nil
}

// fileDeadLettered is the dead-letter hook of package files: a file given up on for any reason
// (unparsable, missing, retries exhausted) is recorded as failed on its job with the reason, and
// the job is completed if that was its last file. It is idempotent.
func (s *Stage) fileDeadLettered(ctx context.Context, msg jetstream.Msg, reason string) error {
	var ready amrpipev1.ManifestReady
	if err := bus.Decode(msg, &ready); err != nil {
		return nil // not a file we can name: the dead letter is all there is to say
	}
	jobID, err := topology.SubjectJob(msg.Subject())
	if err != nil {
		return nil
	}
	file, err := topology.ManifestFile(jobID, jobID+"/"+ready.GetFile())
	if err != nil {
		return nil
	}
	if !strings.HasPrefix(reason, file+": ") {
		reason = file + ": " + reason
	}
	updated, err := s.store.Fire(ctx, jobID, jobstore.FileFailed(file, reason))
	if err == nil || errors.Is(err, jobstore.ErrRefused) {
		if perr := s.progress.remove(ctx, jobID, file); perr != nil {
			s.log.WarnContext(ctx, "remove parse progress", "job", jobID, "file", file, "err", perr)
		}
	}
	if errors.Is(err, jobstore.ErrRefused) {
		s.log.InfoContext(ctx, "failed file of a job that does not take it", "job", jobID, "file", file, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("record failure of %s: %w", file, err)
	}
	s.log.WarnContext(ctx, "file failed", "job", jobID, "file", file, "reason", reason)
	return s.complete(ctx, updated)
}

func (s *Stage) countFile(out *fileOutput, outcome string) {
	kind := manifest.KindUnknown
	if out != nil {
		kind = out.kind
	}
	s.metrics.files.WithLabelValues(kind.String(), outcome).Inc()
}
