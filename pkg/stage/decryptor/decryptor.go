// Package decryptor is the decryptor stage: on each FinishManifestFileUpload event it downloads
// that one package file from the job's folder in the manifest container, decrypts it
// (AES-256-CBC, IV from the blob's metadata, PKCS#7 padding checked at the end) as a stream
// straight into the amr_manifests object store, and tells the parser with ManifestReady.
//
// Every step is safe to repeat: a redelivered event finds the object stored (it never rewrites an
// object a parser may be reading) and republishes ManifestReady under the same message id
// "<jobID>/<file>", which JetStream drops as a duplicate; an event of a file its job lists as
// parsed or failed changes nothing.
//
// The object store is a cache of Azure: the parser deletes a file's copy once its records are
// published, and one that expired before it was parsed is asked for again (AmrpipeManifestExpired
// on the job's event subject, the upload event's payload). The decryptor then downloads and
// decrypts the blob again into a new object, without a new ManifestReady (the parser holds its own
// and looks again); a blob Azure no longer has fails the file, with the reason.
package decryptor

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/manifestcopy"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Def is the decryptor's row in the stage table.
func Def() stage.Def {
	return stage.Define(stage.Def{
		Name:      topology.StageDecryptor,
		Summary:   "on each FinishManifestFileUpload, streams the blob through AES-256-CBC into the object store",
		Uses:      stage.UsesStorage | stage.UsesKEK,
		Consumers: []string{topology.ConsumerDecryptor},
		Publishes: []string{topology.ManifestSubject("<jobID>"), topology.EventSubject("<jobID>", topology.EventJobChanged)},
	}, New)
}

// Config tunes the stage.
type Config struct {
	// Concurrency is how many package files are decrypted at once.
	Concurrency int
	// KeepAlive is the InProgress interval while a file is downloaded and decrypted (0: a third
	// of the consumer's AckWait).
	KeepAlive time.Duration
	// ThrottleBudget is how long after a file's announcement Azure Storage may throttle its
	// download (503 ServerBusy) without the tries counting as failures; past it they count,
	// so a storm that never ends fails the file instead of hanging its job.
	ThrottleBudget time.Duration
}

// RegisterFlags adds the stage's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "package files decrypted at once")
	fs.DurationVar(&c.KeepAlive, "keepalive", c.KeepAlive, "InProgress interval during a long download (0: a third of AckWait)")
	if c.ThrottleBudget <= 0 {
		c.ThrottleBudget = time.Hour
	}
	fs.DurationVar(&c.ThrottleBudget, "throttle-budget", c.ThrottleBudget,
		"how long after its announcement a file's download may be throttled by Azure Storage without counting as failures")
}

// Stage is a decryptor.
type Stage struct {
	cfg     Config
	deps    stage.Deps
	objects jetstream.ObjectStore // bound by Run
	packer  manifestcopy.Packer   // stores the decrypted files into objects
	metrics *metrics
	log     *slog.Logger
	tracer  trace.Tracer
}

// New checks the dependencies: the storage account and the key-encryption key (encryption is on
// by default: without the KEK no job key opens).
func New(cfg Config, deps stage.Deps) (*Stage, error) {
	if deps.Storage == nil {
		return nil, fmt.Errorf("decryptor: %w: need -storage-blob-url, -storage-account and %s", storage.ErrNotConfigured, storage.KeyEnv)
	}
	if deps.KEK == nil {
		return nil, fmt.Errorf("decryptor: %w", keywrap.ErrNoKEK)
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	m, err := newMetrics(deps.Runtime.Registry)
	if err != nil {
		return nil, fmt.Errorf("decryptor: %w", err)
	}
	return &Stage{cfg: cfg, deps: deps, metrics: m, log: deps.Logger(),
		tracer: deps.Runtime.Tracer.Tracer("github.com/amrpipe/amrpipe/pkg/stage/decryptor")}, nil
}

// Run binds the object store and consumes upload events until ctx ends (then drains). A file
// given up on for any reason is recorded as failed on its job (refuse).
func (s *Stage) Run(ctx context.Context) error {
	err := s.deps.Runtime.Retry(ctx, "bind object store "+topology.ObjectManifests, func(ctx context.Context) error {
		var err error
		s.objects, err = s.deps.Runtime.JS.ObjectStore(ctx, topology.ObjectManifests)
		return err
	})
	if err != nil {
		return stage.Stopped(ctx, fmt.Errorf("decryptor: %w", err))
	}
	return s.deps.Consume(ctx, stage.Consumer{Name: topology.ConsumerDecryptor, Handler: s.handle,
		Concurrency: s.cfg.Concurrency, KeepAlive: s.cfg.KeepAlive, OnDeadLetter: s.refuse, ThrottleBudget: s.cfg.ThrottleBudget})
}

// handle decrypts the file one FinishManifestFileUpload event names.
func (s *Stage) handle(ctx context.Context, msg jetstream.Msg) error {
	err := s.process(ctx, msg)
	if err != nil {
		s.metrics.errors.WithLabelValues(errorClass(err)).Inc()
	}
	return err
}

func (s *Stage) process(ctx context.Context, msg jetstream.Msg) error {
	var re amrpipev1.RelayedEvent
	if err := bus.Decode(msg, &re); err != nil {
		return failure("bad_event", err)
	}
	jobID, err := topology.SubjectJob(msg.Subject())
	if err != nil {
		return failure("bad_event", &bus.Permanent{Reason: err.Error()})
	}
	up := re.GetEvent().GetFinishManifestFileUpload()
	switch {
	case up == nil:
		return failure("bad_event", &bus.Permanent{Reason: fmt.Sprintf("event on %s is not a FinishManifestFileUpload", msg.Subject())})
	case !strings.EqualFold(re.GetEvent().GetJobId(), jobID):
		return failure("bad_event", &bus.Permanent{Reason: fmt.Sprintf("event of job %q on the subject of job %s", re.GetEvent().GetJobId(), jobID)})
	}
	blobName := up.GetManifestFileName()
	file, err := topology.ManifestFile(jobID, blobName)
	if err != nil {
		return failure("bad_name", &bus.Permanent{Reason: err.Error()})
	}
	_, event, _ := topology.SubjectEvent(msg.Subject())
	again := event == topology.EventManifestExpired
	ready, err := s.store(ctx, jobID, re.GetSpecId(), blobName, file, again)
	if errors.Is(err, errSettled) {
		s.log.DebugContext(ctx, "file settled already", "job", jobID, "file", file, "event", event)
		return nil
	}
	if err != nil {
		return err
	}
	if again {
		s.log.InfoContext(ctx, "expired manifest in the object store again", "job", jobID, "file", file, "bytes", ready.GetSize())
		return nil // the parser holds the file's ManifestReady and looks for the object again
	}
	ack, err := bus.Publish(ctx, s.deps.Runtime.JS, topology.ManifestSubject(jobID), ready, jobID+"/"+file)
	if err != nil {
		return failure("publish", err)
	}
	if ack.Duplicate {
		s.metrics.duplicates.Inc()
	}
	s.log.InfoContext(ctx, "manifest ready", "job", jobID, "file", file, "bytes", ready.GetSize(), "duplicate", ack.Duplicate)
	return nil
}

// errSettled: the job lists the file as parsed or failed; there is nothing to decrypt.
var errSettled = errors.New("file settled on its job")

// store downloads, decrypts and stores one file and returns its ManifestReady; again says the
// parser asked for a copy that expired (the blob was there before: a missing one is gone for good).
func (s *Stage) store(ctx context.Context, jobID, specID, blobName, file string, again bool) (*amrpipev1.ManifestReady, error) {
	ctx, span := s.tracer.Start(ctx, "decrypt "+file, trace.WithAttributes(
		attribute.String("amr.job_id", jobID), attribute.String("amr.file", file)))
	defer span.End()

	rec, _, err := s.deps.Jobs.Job(ctx, jobID)
	if err != nil {
		// The submitter writes the record before it publishes the job, so this is the store's trouble.
		return nil, failure("job_record", &bus.Retryable{Err: fmt.Errorf("job %s: %w", jobID, err)})
	}
	if jobstore.Settled(rec, file) {
		return nil, errSettled
	}
	container := rec.GetContainer()
	if container == "" {
		container = s.deps.Storage.Config().Container
	}
	if specID == "" {
		specID = rec.GetSpec().GetSpecId()
	}
	key, err := s.jobKey(ctx, jobID, specID, rec.GetEncrypted())
	if err != nil {
		return nil, err
	}
	object := topology.ManifestObject(jobID, file)
	if ready, ok := s.stored(ctx, object, jobID, specID, file); ok {
		// Stored by an earlier delivery: never rewrite an object a parser may be reading.
		s.metrics.manifests.WithLabelValues("reused").Inc()
		return ready, nil
	}

	resp, err := s.deps.Storage.Blob().ServiceClient().NewContainerClient(container).NewBlobClient(blobName).DownloadStream(ctx, nil)
	if err != nil {
		switch {
		case again && bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
			return nil, failure("gone", &bus.Permanent{Reason: fmt.Sprintf(
				"%s: its decrypted copy expired before it was parsed, and blob %s is gone from container %s: the file cannot be read again",
				file, blobName, container)})
		case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
			return nil, failure("not_found", &bus.Retryable{Err: fmt.Errorf("blob %s in container %s not found yet", blobName, container)})
		}
		// Azure's own verdict (503 ServerBusy is throttling, not a failure) is stage.Verdict's.
		return nil, failure("storage", fmt.Errorf("download %s: %w", blobName, sas.RedactError(err)))
	}
	defer func() {
		if cerr := resp.Body.Close(); cerr != nil {
			s.log.DebugContext(ctx, "close download", "blob", blobName, "err", cerr)
		}
	}()
	cipherText := &counter{r: resp.Body}
	plain, err := plaintext(cipherText, key, resp.Metadata, blobName, specID)
	if err != nil {
		return nil, err
	}
	// The file is decrypted and compressed whole before anything is stored, so a truncated or
	// tampered blob leaves no object behind (and a good one from an earlier delivery stays). The
	// object store digests what it stores (SHA-256), the digest ManifestReady carries.
	info, err := s.packer.Store(ctx, s.objects, object, "decrypted "+blobName, plain)
	if err != nil {
		if topology.ManifestsGone(ctx, s.deps.Runtime.JS, err) {
			return nil, failure("object_store", s.restoreStore(ctx, object, err))
		}
		return nil, decryptFailure(blobName, specID, err)
	}
	ready, err := manifestReady(info, jobID, specID, file)
	if err != nil {
		return nil, failure("object_store", &bus.Retryable{Err: fmt.Errorf("stored %s: %w", object, err)})
	}
	s.metrics.bytes.WithLabelValues("ciphertext").Add(float64(cipherText.n))
	s.metrics.bytes.WithLabelValues("plaintext").Add(float64(ready.GetSize()))
	mode := "copied"
	switch {
	case again:
		mode = "decrypted_again"
	case key != nil:
		mode = "decrypted"
	}
	s.metrics.manifests.WithLabelValues(mode).Inc()
	span.SetAttributes(attribute.Int64("amr.bytes", ready.GetSize()), attribute.String("amr.mode", mode))
	return ready, nil
}

// restoreStore creates the object store again after a server restart lost it (it is held in
// memory: topology.Options.ManifestStorage) and returns the retryable error of the put it failed.
func (s *Stage) restoreStore(ctx context.Context, object string, cause error) error {
	created, err := topology.RestoreManifests(ctx, s.deps.Runtime.JS, topology.Options{Replicas: s.deps.Runtime.Config.Replicas})
	if err != nil {
		return &bus.Retryable{Err: fmt.Errorf("store %s: %w (%w)", object, cause, err)}
	}
	if created {
		s.log.WarnContext(ctx, "object store was gone (a server restart empties a store held in memory); created it again",
			"store", topology.ObjectManifests, "object", object)
	}
	return &bus.Retryable{Err: fmt.Errorf("store %s: the object store was gone: %w", object, cause)}
}

// manifestReady announces the stored object info describes: the file's size and the object's
// SHA-256 digest, which the object store computes over the bytes it stores ("SHA-256=" and
// base64url).
func manifestReady(info *jetstream.ObjectInfo, jobID, specID, file string) (*amrpipev1.ManifestReady, error) {
	digest, ok := strings.CutPrefix(info.Digest, "SHA-256=")
	sum, err := base64.URLEncoding.DecodeString(digest)
	if !ok || err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("object %s has no SHA-256 digest (%q)", info.Name, info.Digest)
	}
	return &amrpipev1.ManifestReady{JobId: jobID, File: file, Object: info.Name, Size: manifestcopy.Size(info),
		Sha256: hex.EncodeToString(sum), SpecId: specID}, nil
}

// stored returns the ManifestReady of an object an earlier delivery stored whole, and false when
// there is none. The object store writes an object's description after its chunks and purges the
// chunks when a write fails, but the description of a write whose acknowledgements were lost (a
// cluster's leader changing under it) can stay without them: an object is whole only when all
// the chunks it describes are there.
func (s *Stage) stored(ctx context.Context, object, jobID, specID, file string) (*amrpipev1.ManifestReady, bool) {
	info, err := s.objects.GetInfo(ctx, object)
	if err != nil || info.Deleted || !s.whole(ctx, info) {
		return nil, false
	}
	ready, err := manifestReady(info, jobID, specID, file)
	return ready, err == nil
}

// whole reports whether every chunk info describes is stored (one request; false when it cannot
// tell, so the file is decrypted and stored again).
func (s *Stage) whole(ctx context.Context, info *jetstream.ObjectInfo) bool {
	if info.Chunks == 0 {
		return true
	}
	st, err := s.deps.Runtime.JS.Stream(ctx, topology.ObjectStream(topology.ObjectManifests))
	if err != nil {
		return false
	}
	chunks := fmt.Sprintf("$O.%s.C.%s", topology.ObjectManifests, info.NUID)
	si, err := st.Info(ctx, jetstream.WithSubjectFilter(chunks))
	if err != nil {
		return false
	}
	if n := si.State.Subjects[chunks]; n != uint64(info.Chunks) {
		s.log.WarnContext(ctx, "stored object incomplete; storing it again", "object", info.Name, "chunks", info.Chunks, "found", n)
		return false
	}
	return true
}

// jobKey returns the AES key of an encrypted job (nil for a plaintext one): the record says
// which the job is, so a key that cannot be found is an error, never a reason to copy the blob.
func (s *Stage) jobKey(ctx context.Context, jobID, specID string, encrypted bool) ([]byte, error) {
	if !encrypted {
		return nil, nil
	}
	if specID == "" {
		return nil, failure("key", &bus.Permanent{Reason: fmt.Sprintf("job %s is encrypted but names no spec to find its key under", jobID)})
	}
	key, err := s.deps.Jobs.OpenKey(ctx, specID, s.deps.KEK, s.deps.Now())
	switch {
	case errors.Is(err, jobstore.ErrNotFound):
		return nil, failure("key", &bus.Permanent{Reason: fmt.Sprintf("job %s is encrypted but no key is stored for spec %s (expired or never stored)", jobID, specID)})
	case errors.Is(err, jobstore.ErrNoKEK), errors.Is(err, keywrap.ErrExpired), errors.Is(err, keywrap.ErrOtherKEK),
		errors.Is(err, keywrap.ErrOpen), errors.Is(err, keywrap.ErrKeySize):
		return nil, failure("key", &bus.Permanent{Reason: fmt.Sprintf("job %s: key of spec %s does not open", jobID, specID), Err: err})
	case err != nil:
		return nil, failure("key", &bus.Retryable{Err: err})
	}
	return key, nil
}

// plaintext returns the reader of the blob's plaintext: decrypted when the job has a key and the
// blob an IV, the blob itself when it has neither.
func plaintext(src io.Reader, key []byte, md map[string]*string, blobName, specID string) (io.Reader, error) {
	iv, err := aescbc.IVFromMetadata(md)
	switch {
	case errors.Is(err, aescbc.ErrNoIV) && key == nil:
		return src, nil // an unencrypted job
	case errors.Is(err, aescbc.ErrNoIV):
		return nil, failure("no_iv", &bus.Permanent{Reason: fmt.Sprintf("%s has no IV metadata, but spec %s is encrypted: not the upload SharePoint announced", blobName, specID)})
	case err != nil:
		return nil, failure("no_iv", &bus.Permanent{Reason: fmt.Sprintf("%s: %v", blobName, err)})
	case key == nil:
		return nil, failure("key", &bus.Permanent{Reason: fmt.Sprintf("%s is encrypted (IV metadata) but job of spec %q was created without a key", blobName, specID)})
	}
	r, err := aescbc.NewReader(src, key, iv, aescbc.WithExpect(aescbc.ExpectXML))
	if err != nil {
		return nil, failure("key", &bus.Permanent{Reason: fmt.Sprintf("%s: %v", blobName, err)})
	}
	return r, nil
}

// decryptFailure classifies an error of the streaming decrypt-and-store.
func decryptFailure(blobName, specID string, err error) error {
	switch {
	case errors.Is(err, aescbc.ErrWrongKey):
		return failure("wrong_key", &bus.Permanent{Reason: fmt.Sprintf(
			"%s does not decrypt with the key of spec %s: wrong key or IV (the first block is not XML); nothing was stored", blobName, specID)})
	case errors.Is(err, aescbc.ErrTruncated):
		return failure("truncated", &bus.Permanent{Reason: fmt.Sprintf(
			"%s is truncated or corrupt: %v; nothing was stored", blobName, err)})
	case errors.Is(err, aescbc.ErrBadPadding):
		return failure("bad_padding", &bus.Permanent{Reason: fmt.Sprintf(
			"%s ends in invalid padding: truncated at a block boundary, tampered, or a wrong key; nothing was stored (%v)", blobName, err)})
	}
	return failure("storage", fmt.Errorf("decrypt %s: %w", blobName, sas.RedactError(err)))
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// classified tags an error with the metrics class it counts under.
type classified struct {
	class string
	err   error
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

func failure(class string, err error) error { return &classified{class: class, err: err} }

// errorClass is the "class" label of an error: its tag, else "other".
func errorClass(err error) string {
	var c *classified
	if errors.As(err, &c) {
		return c.class
	}
	return "other"
}
