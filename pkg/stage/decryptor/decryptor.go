// Package decryptor is the decryptor stage: on each FinishManifestFileUpload event it downloads
// that one package file from the job's folder in the manifest container, decrypts it
// (AES-256-CBC, IV from the blob's metadata, PKCS#7 padding checked at the end) as a stream
// straight into the amr_manifests object store, and tells the parser with ManifestReady.
//
// Every step is safe to repeat: a redelivered event overwrites the same object with the same
// bytes and republishes ManifestReady under the same message id "<jobID>/<file>", which JetStream
// drops as a duplicate.
package decryptor

import (
	"context"
	"crypto/sha256"
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
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Stage names the stage in metrics, spans and its dead-letter subject amr.dlq.decryptor.
const Stage = "decryptor"

// Config tunes the stage.
type Config struct {
	// Concurrency is how many package files are decrypted at once.
	Concurrency int
	// KeepAlive is the InProgress interval while a file is downloaded and decrypted (0: a third
	// of the consumer's AckWait).
	KeepAlive time.Duration
}

// RegisterFlags adds the stage's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "package files decrypted at once")
	fs.DurationVar(&c.KeepAlive, "keepalive", c.KeepAlive, "InProgress interval during a long download (0: a third of AckWait)")
}

// Deps are what the stage talks to besides JetStream.
type Deps struct {
	// Storage is the manifest storage account (shared key). Required.
	Storage *storage.Account
	// KEK unwraps the job keys; nil means only unencrypted jobs can be handled.
	KEK *keywrap.KEK
	// Store is the job store; nil opens one on the runtime's JetStream.
	Store *jobstore.Store
	// Now is the clock for key expiry; nil is time.Now.
	Now func() time.Time
}

// Service is a running decryptor.
type Service struct {
	rt      *svc.Runtime
	cfg     Config
	deps    Deps
	objects jetstream.ObjectStore
	metrics *metrics
	log     *slog.Logger
	tracer  trace.Tracer
}

// New checks the dependencies and binds the job store and object store; the runtime's topology
// must be ensured.
func New(rt *svc.Runtime, cfg Config, deps Deps) (*Service, error) {
	if deps.Storage == nil {
		return nil, errors.New("decryptor: no storage account")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if deps.Store == nil {
		st, err := jobstore.Open(ctx, rt.JS, deps.Now)
		if err != nil {
			return nil, fmt.Errorf("decryptor: %w", err)
		}
		deps.Store = st
	}
	objects, err := rt.JS.ObjectStore(ctx, topology.ObjectManifests)
	if err != nil {
		return nil, fmt.Errorf("decryptor: bind object store %s: %w", topology.ObjectManifests, err)
	}
	m, err := newMetrics(rt.Registry)
	if err != nil {
		return nil, fmt.Errorf("decryptor: %w", err)
	}
	return &Service{rt: rt, cfg: cfg, deps: deps, objects: objects, metrics: m,
		log: rt.Log.With("stage", Stage), tracer: rt.Tracer.Tracer("github.com/amrpipe/amrpipe/pkg/stage/decryptor")}, nil
}

// Run consumes upload events until ctx ends (then drains).
func (s *Service) Run(ctx context.Context) error {
	cons, err := topology.BindConsumer(ctx, s.rt.JS, topology.ConsumerDecryptor)
	if err != nil {
		return err
	}
	o := s.rt.ConsumeOptions(Stage)
	o.Concurrency = s.cfg.Concurrency
	o.KeepAlive = s.cfg.KeepAlive
	return bus.Consume(ctx, cons, s.handle, o)
}

// handle decrypts the file one FinishManifestFileUpload event names.
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) error {
	err := s.process(ctx, msg)
	if err != nil {
		s.metrics.errors.WithLabelValues(errorClass(err)).Inc()
		var perm *bus.Permanent
		if errors.As(err, &perm) {
			if rerr := s.refuse(ctx, msg, perm.Reason); rerr != nil {
				return rerr
			}
		}
	}
	return err
}

func (s *Service) process(ctx context.Context, msg jetstream.Msg) error {
	var re amrpipev1.RelayedEvent
	if err := bus.Decode(msg, &re); err != nil {
		return failure("bad_event", err)
	}
	jobID, err := subjectJob(msg.Subject())
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
	file, err := ManifestFile(jobID, blobName)
	if err != nil {
		return failure("bad_name", &bus.Permanent{Reason: err.Error()})
	}
	ready, err := s.store(ctx, jobID, re.GetSpecId(), blobName, file)
	if err != nil {
		return err
	}
	ack, err := bus.Publish(ctx, s.rt.JS, topology.ManifestSubject(jobID), ready, jobID+"/"+file)
	if err != nil {
		return failure("publish", err)
	}
	if ack.Duplicate {
		s.metrics.duplicates.Inc()
	}
	s.log.InfoContext(ctx, "manifest ready", "job", jobID, "file", file, "bytes", ready.GetSize(), "duplicate", ack.Duplicate)
	return nil
}

// subjectJob returns the job id token of an event subject amr.events.<jobID>.<Event>.
func subjectJob(subject string) (string, error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || topology.CheckToken(parts[2]) != nil {
		return "", fmt.Errorf("subject %q is not an event subject", subject)
	}
	return parts[2], nil
}

// store downloads, decrypts and stores one file and returns its ManifestReady.
func (s *Service) store(ctx context.Context, jobID, specID, blobName, file string) (*amrpipev1.ManifestReady, error) {
	ctx, span := s.tracer.Start(ctx, "decrypt "+file, trace.WithAttributes(
		attribute.String("amr.job_id", jobID), attribute.String("amr.file", file)))
	defer span.End()

	rec, _, err := s.deps.Store.Job(ctx, jobID)
	if err != nil {
		// The submitter writes the record before it publishes the job, so this is the store's trouble.
		return nil, failure("job_record", &bus.Retryable{Err: fmt.Errorf("job %s: %w", jobID, err)})
	}
	container := rec.GetContainer()
	if container == "" {
		container = s.deps.Storage.Config().Container
	}
	if specID == "" {
		specID = rec.GetSpec().GetSpecId()
	}
	key, err := s.jobKey(ctx, jobID, specID)
	if err != nil {
		return nil, err
	}

	resp, err := s.deps.Storage.Blob().ServiceClient().NewContainerClient(container).NewBlobClient(blobName).DownloadStream(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return nil, failure("not_found", &bus.Retryable{Err: fmt.Errorf("blob %s in container %s not found yet", blobName, container)})
		}
		return nil, failure("storage", &bus.Retryable{Err: fmt.Errorf("download %s: %s", blobName, sas.Redact(err.Error()))})
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
	sum := sha256.New()
	out := &counter{r: io.TeeReader(plain, sum)}
	object := topology.ManifestObject(jobID, file)
	// Put streams in chunks and purges them if the reader fails, so a truncated or tampered
	// blob leaves no object behind (and a good one from an earlier delivery stays).
	if _, err := s.objects.Put(ctx, jetstream.ObjectMeta{Name: object, Description: "decrypted " + blobName,
		Opts: &jetstream.ObjectMetaOptions{ChunkSize: topology.ManifestChunkSize}}, out); err != nil {
		return nil, decryptFailure(blobName, specID, err)
	}
	s.metrics.bytes.WithLabelValues("ciphertext").Add(float64(cipherText.n))
	s.metrics.bytes.WithLabelValues("plaintext").Add(float64(out.n))
	mode := "copied"
	if key != nil {
		mode = "decrypted"
	}
	s.metrics.manifests.WithLabelValues(mode).Inc()
	span.SetAttributes(attribute.Int64("amr.bytes", out.n), attribute.String("amr.mode", mode))
	return &amrpipev1.ManifestReady{
		JobId:  jobID,
		File:   file,
		Object: object,
		Size:   out.n,
		Sha256: hex.EncodeToString(sum.Sum(nil)),
		SpecId: specID,
	}, nil
}

// jobKey returns the job's AES key, or nil for a job without one.
func (s *Service) jobKey(ctx context.Context, jobID, specID string) ([]byte, error) {
	if specID == "" {
		return nil, nil // neither the event nor the record names a spec: no key can exist
	}
	key, err := s.deps.Store.OpenKey(ctx, specID, s.deps.KEK, s.deps.Now())
	switch {
	case errors.Is(err, jobstore.ErrNotFound):
		return nil, nil
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
		return nil, failure("no_iv", &bus.Permanent{Reason: fmt.Sprintf("%s has no IV metadata, but spec %s has a key: not the upload SharePoint announced", blobName, specID)})
	case err != nil:
		return nil, failure("no_iv", &bus.Permanent{Reason: fmt.Sprintf("%s: %v", blobName, err)})
	case key == nil:
		return nil, failure("key", &bus.Permanent{Reason: fmt.Sprintf("%s is encrypted (IV metadata) but no key is stored for spec %q (expired or never stored)", blobName, specID)})
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
	return failure("storage", &bus.Retryable{Err: fmt.Errorf("decrypt %s: %s", blobName, sas.Redact(err.Error()))})
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
