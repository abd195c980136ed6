package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// queueBatch is the most messages one dequeue returns (Azure's limit).
const queueBatch = 32

// settleTimeout bounds the delete or dead letter of a message after it was handled.
const settleTimeout = 10 * time.Second

// errRetryLater marks trouble on our side (a store outage): leave the message for a later read.
var errRetryLater = errors.New("retry later")

// readQueue relays the report queue's messages until ctx ends: a second, optional source of the
// same events (SharePoint deprecates the queue in H2 2026; GetMigrationJobProgress is primary).
func (s *Stage) readQueue(ctx context.Context) error {
	qc, err := s.deps.Storage.QueueClient(s.queue)
	if err != nil {
		return fmt.Errorf("report queue %s: %w", s.queue, err)
	}
	s.log.Info("reading report queue", "queue", s.queue)
	for {
		n, err := s.readQueueOnce(ctx, qc)
		if err != nil && ctx.Err() == nil {
			s.metrics.queue.WithLabelValues("read_error").Inc()
			s.log.Warn("read report queue", "queue", s.queue, "err", sas.Redact(err.Error()))
		}
		wait := s.cfg.QueueInterval
		if n == queueBatch {
			wait = 0 // a full batch: more are probably waiting
		}
		if backoff.Sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// readQueueOnce dequeues one batch and handles each message; it returns how many it got.
func (s *Stage) readQueueOnce(ctx context.Context, qc *azqueue.QueueClient) (int, error) {
	n, vis := int32(queueBatch), int32(max(s.cfg.QueueVisibility/time.Second, 1))
	resp, err := qc.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &vis})
	if err != nil {
		return 0, err
	}
	for _, m := range resp.Messages {
		if ctx.Err() != nil {
			break // the message reappears after its visibility timeout
		}
		s.queueMessage(ctx, qc, m)
	}
	return len(resp.Messages), nil
}

// queueMessage relays one queue message and deletes it, dead-letters it, or leaves it to
// reappear. The message is deleted only after its event was published (or dead-lettered): a
// crash before the delete brings it back, and then it is a duplicate.
func (s *Stage) queueMessage(ctx context.Context, qc *azqueue.QueueClient, m *azqueue.DequeuedMessage) {
	id, text := deref(m.MessageID), deref(m.MessageText)
	attempts := int64(0)
	if m.DequeueCount != nil {
		attempts = *m.DequeueCount
	}
	log := s.log.With("queue", s.queue, "message", id, "attempt", attempts)
	ctx, span := s.deps.Runtime.Tracer.Tracer("github.com/amrpipe/amrpipe/pkg/stage/relay").Start(ctx, topology.StageRelay+" queue message",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attribute.String("messaging.system", "azure_queue"),
			attribute.String("messaging.destination.name", s.queue), attribute.String("messaging.message.id", id)))
	defer span.End()
	outcome, reason := s.relayQueued(ctx, text)
	span.SetAttributes(attribute.String("amr.outcome", outcome))
	// Settle what was done even when shutdown began meanwhile: a message relayed but not deleted
	// only comes back as a duplicate, but there is no need for it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	switch outcome {
	case "unknown_job":
		if attempts < int64(s.cfg.QueueMaxAttempts) {
			log.Debug("message of an unrecorded job left in the queue", "why", reason)
			s.metrics.queue.WithLabelValues(outcome).Inc()
			return
		}
		reason = fmt.Sprintf("%s, after %d reads (another tool's job sharing the queue, or one never recorded)", reason, attempts)
		outcome = "dead_letter"
	case "error":
		log.Warn("message left for a later read", "err", reason)
		s.metrics.queue.WithLabelValues(outcome).Inc()
		return
	}
	if outcome == "dead_letter" {
		if err := s.deadLetterQueued(ctx, id, text, attempts, reason); err != nil {
			log.Error("dead letter", "reason", reason, "err", err)
			s.metrics.queue.WithLabelValues("error").Inc()
			return // not deleted: it comes back
		}
		log.Warn("queue message dead-lettered", "reason", reason)
	}
	s.metrics.queue.WithLabelValues(outcome).Inc()
	if _, err := qc.DeleteMessage(ctx, id, deref(m.PopReceipt), nil); err != nil {
		// It reappears and is relayed as a duplicate, i.e. not again.
		log.Warn("delete queue message", "err", sas.Redact(err.Error()))
	}
}

// relayQueued decodes, authenticates and relays one message text. outcome is "relayed",
// "duplicate", "deferred" (an end: the progress API is the authoritative source of those),
// "finished" (an authentic late message of a job that is DONE or FAILED: deleted),
// "unknown_job" (leave it for now), "dead_letter" (with the reason) or "error" (leave it).
//
// Anyone holding the queue's Add SAS (handed to SharePoint) can post to it, so a message changes
// a job only if it is SharePoint's: for an encrypted job it must come in an envelope that opens
// with that job's key and names the same job as the event inside; a plain message, or one of
// another job, is dead-lettered and changes nothing. A plaintext job's messages cannot be
// authenticated: like every queue message they only move the state forward and wake the
// decryptor; files and ends are taken from the progress API only.
func (s *Stage) relayQueued(ctx context.Context, text string) (outcome, reason string) {
	qm, err := amrevent.DecodeQueueMessage(text, func(jobID string) ([]byte, error) { return s.queueKey(ctx, jobID) })
	switch {
	case errors.Is(err, errUnknownJob):
		return "unknown_job", err.Error()
	case errors.Is(err, errRetryLater):
		return "error", err.Error()
	case err != nil:
		s.metrics.malformed.WithLabelValues(sourceLabel(amrpipev1.Source_SOURCE_QUEUE)).Inc()
		return "dead_letter", "undecodable report-queue message: " + err.Error()
	}
	ev, err := amrevent.DecodeEvent(qm.Event)
	if err != nil {
		s.metrics.malformed.WithLabelValues(sourceLabel(amrpipev1.Source_SOURCE_QUEUE)).Inc()
		return "dead_letter", "undecodable event in a report-queue message: " + err.Error()
	}
	// Job records are keyed by the lower-case GUID the client returns; SharePoint may write either.
	jobID := strings.ToLower(ev.GetJobId())
	if !guidRE.MatchString(jobID) {
		return "dead_letter", fmt.Sprintf("report-queue event has no job id GUID (JobId %q)", truncate(jobID, 64))
	}
	if qm.Encrypted && !strings.EqualFold(qm.EnvelopeJobID, jobID) {
		return "dead_letter", fmt.Sprintf("the envelope of job %s carries an event of job %s: not relayed", truncate(qm.EnvelopeJobID, 64), jobID)
	}
	rec, _, err := s.deps.Jobs.Job(ctx, jobID)
	if errors.Is(err, jobstore.ErrNotFound) {
		return "unknown_job", fmt.Sprintf("%v: %s", errUnknownJob, jobID)
	} else if err != nil {
		return "error", err.Error()
	}
	if rec.GetEncrypted() && !qm.Encrypted {
		s.metrics.unauthenticated.Inc()
		return "dead_letter", fmt.Sprintf("a plain %s for encrypted job %s: not SharePoint's (its messages come in the job's envelope); it changed nothing",
			truncate(ev.GetRawName(), 64), jobID)
	}
	if jobstore.Final(rec) {
		// SharePoint's late message (a duplicate, another URL's end): nothing can change the job
		// any more, and what deduplicated its events is forgotten (jobstore.Forget).
		return "finished", ""
	}
	e, err := newEvent(jobID, qm.Event, 0)
	if err != nil {
		return "dead_letter", "report-queue event cannot be relayed: " + err.Error()
	}
	if ends(e.ev.GetType()) {
		// Not evidence, but news: poll the job soon for the authoritative end.
		if err := s.bringForward(ctx, rec, e.id); err != nil {
			return "error", err.Error()
		}
		return "deferred", ""
	}
	if up := e.ev.GetFinishManifestFileUpload(); up != nil {
		if _, err := topology.ManifestFile(jobID, up.GetManifestFileName()); err != nil {
			return "dead_letter", "report-queue event cannot be relayed: " + err.Error()
		}
	}
	_, published, err := s.relay(ctx, jobID, amrpipev1.Source_SOURCE_QUEUE, []event{e}, nil, nil)
	if err != nil {
		return "error", err.Error()
	}
	if published == 0 {
		return "duplicate", ""
	}
	return "relayed", ""
}

// queueKey finds the key of a job's encrypted envelope: JobRecord → spec id → amr_keys → unwrap.
func (s *Stage) queueKey(ctx context.Context, jobID string) ([]byte, error) {
	if !guidRE.MatchString(jobID) {
		return nil, fmt.Errorf("envelope JobId %q is not a GUID: %w", truncate(jobID, 64), amrevent.ErrNoKey)
	}
	jobID = strings.ToLower(jobID)
	rec, _, err := s.deps.Jobs.Job(ctx, jobID)
	if errors.Is(err, jobstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", errUnknownJob, jobID)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRetryLater, err)
	}
	specID := rec.GetSpec().GetSpecId()
	if specID == "" {
		return nil, fmt.Errorf("job %s has no spec id: %w", jobID, amrevent.ErrNoKey)
	}
	key, err := s.deps.Jobs.OpenKey(ctx, specID, s.deps.KEK, s.deps.Now())
	switch {
	case errors.Is(err, jobstore.ErrNotFound):
		return nil, fmt.Errorf("no key stored for spec %s of job %s: %w", specID, jobID, amrevent.ErrNoKey)
	case errors.Is(err, jobstore.ErrNoKEK), errors.Is(err, keywrap.ErrExpired), errors.Is(err, keywrap.ErrOtherKEK),
		errors.Is(err, keywrap.ErrOpen), errors.Is(err, keywrap.ErrKeySize):
		return nil, err // the message cannot be read, ever: dead-letter it
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errRetryLater, err)
	}
	return key, nil
}

// deadLetterUnknown records an event of a job's progress log whose name is outside SharePoint's
// documented set: it is kept for an operator on amr.dlq.progress-relay, and changes nothing.
func (s *Stage) deadLetterUnknown(ctx context.Context, jobID, raw string) error {
	sum := sha256.Sum256([]byte(raw))
	id := hex.EncodeToString(sum[:8])
	dl := &amrpipev1.DeadLetter{
		Stage:   topology.StageRelay,
		Subject: "progress/" + jobID,
		Reason:  fmt.Sprintf("%v in the progress log of job %s: not relayed", errUnknownEvent, jobID),
		Payload: []byte(truncate(raw, 4<<10)),
		At:      timestamppb.New(s.deps.Now()),
		MsgId:   id,
	}
	s.metrics.unknown.Inc()
	_, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.DLQSubject(topology.StageRelay), dl, topology.StageRelay+"/unknown/"+jobID+"/"+id)
	return err
}

// deadLetterQueued records a queue message the relay gave up on (its text is ciphertext or a
// plain event, never a key) on amr.dlq.progress-relay.
func (s *Stage) deadLetterQueued(ctx context.Context, msgID, text string, attempts int64, reason string) error {
	dl := &amrpipev1.DeadLetter{
		Stage:      topology.StageRelay,
		Subject:    "azure-queue/" + s.queue,
		Reason:     reason,
		Payload:    []byte(text),
		Headers:    map[string]string{"Azure-Queue": s.queue, "Azure-Message-Id": msgID, "Azure-Dequeue-Count": strconv.FormatInt(attempts, 10)},
		Deliveries: uint64(max(attempts, 0)),
		At:         timestamppb.New(s.deps.Now()),
		MsgId:      msgID,
	}
	_, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.DLQSubject(topology.StageRelay), dl, topology.StageRelay+"/"+s.queue+"/"+msgID)
	return err
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
