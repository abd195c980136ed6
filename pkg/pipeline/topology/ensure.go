package topology

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of Ensure, Verify and BindConsumer.
var (
	// ErrMissing: a stream, bucket, object store or consumer of the topology does not exist (the
	// topology was not applied yet: amrctl topology apply, or a service with -apply-topology).
	ErrMissing = errors.New("missing from JetStream")
	// ErrMismatch: something exists with a configuration the pipeline cannot work with (other
	// subjects, retention or consumer settings, fewer replicas than expected).
	ErrMismatch = errors.New("configured otherwise")
	// ErrLower is wrapped by a *LowerError.
	ErrLower = errors.New("refusing to lower")
)

// applyHint is what an operator runs to change the topology.
const applyHint = "run amrctl topology apply to change it"

// LowerError is Ensure's refusal to lower the replicas or the size limit of a stream, bucket or
// object store that exists, or to set a limit below what it holds.
type LowerError struct {
	// Kind is "stream", "bucket" or "object store"; Name the operator's name of it.
	Kind, Name string
	// What is "replicas" or "max bytes"; Have the current value, Want the value being applied.
	What       string
	Have, Want int64
	// Held is the bytes stored, when the refusal is a limit below them (even AllowLower cannot
	// do that without the server deleting messages).
	Held int64
}

func (e *LowerError) Error() string {
	switch {
	case e.Held > 0:
		return fmt.Sprintf("%s %s holds %s; a limit of %s would make JetStream delete its oldest messages: refusing to set it",
			e.Kind, e.Name, FormatBytes(e.Held), FormatBytes(e.Want))
	case e.What == "replicas":
		return fmt.Sprintf("%s %s has %d replicas; the topology being applied has %d: refusing to lower it — %s (--replicas %d --allow-lower)",
			e.Kind, e.Name, e.Have, e.Want, applyHint, e.Want)
	default:
		return fmt.Sprintf("%s %s has a size limit of %s; the topology being applied has %s: refusing to shrink it — %s (--max-bytes %s=%s --allow-lower)",
			e.Kind, e.Name, FormatBytes(e.Have), FormatBytes(e.Want), applyHint, e.Name, strings.ReplaceAll(FormatBytes(e.Want), " ", ""))
	}
}

// Is makes a LowerError match ErrLower.
func (e *LowerError) Is(target error) bool { return target == ErrLower }

// Ensure applies the topology: it creates what is missing and updates what exists to o: every
// stream, bucket, object store, the pipeline's durable consumers and the downstream consumers of
// AMR_RECORDS. It never lowers a replica count or shrinks a size limit that exists unless
// o.AllowLower (*LowerError otherwise), never sets a limit below what a stream holds, and never
// deletes a consumer; a change JetStream cannot apply in place (a work queue's retention, a
// stream's storage type) fails with the server's error rather than deleting data, and an object
// store keeps the storage it has. It is idempotent, and
// asks a request again when its reply was lost (patient).
func Ensure(ctx context.Context, js jetstream.JetStream, o Options) error {
	js = patient{js}
	// Every refusal first, so that a refused apply changes nothing.
	for _, st := range Stores(o) {
		if err := checkLower(ctx, js, st, o); err != nil {
			return err
		}
	}
	downstream := DownstreamConsumers(o)
	for _, cfg := range Streams(o) {
		// The downstream consumers exist before records can be published, and before an older
		// limits stream turns to interest retention, which would drop every record no consumer
		// is interested in yet.
		_, err := js.Stream(ctx, cfg.Name)
		exists := err == nil
		if exists && cfg.Name == StreamRecords {
			if err := ensureConsumers(ctx, js, downstream); err != nil {
				return err
			}
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
		if !exists && cfg.Name == StreamRecords {
			if err := ensureConsumers(ctx, js, downstream); err != nil {
				return err
			}
		}
	}
	for _, cfg := range Buckets(o) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	for _, cfg := range ObjectStores(o) {
		// A store keeps the storage it was created with: JetStream cannot move a stream between
		// file and memory in place. The manifests' store is a cache of Azure's blobs, so an
		// operator moves it by deleting it (docs/pipeline.md).
		if s, err := js.Stream(ctx, ObjectStream(cfg.Bucket)); err == nil {
			cfg.Storage = s.CachedInfo().Config.Storage
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("ensure object store %s: %w", cfg.Bucket, err)
		}
		if _, err := js.CreateOrUpdateObjectStore(ctx, cfg); err != nil {
			return fmt.Errorf("ensure object store %s: %w", cfg.Bucket, err)
		}
	}
	return ensureConsumers(ctx, js, Consumers())
}

func ensureConsumers(ctx context.Context, js jetstream.JetStream, cs []ConsumerSpec) error {
	for _, c := range cs {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config); err != nil {
			return fmt.Errorf("ensure consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
		}
	}
	return nil
}

// checkLower refuses to lower what exists (see Ensure); a store that does not exist yet passes.
func checkLower(ctx context.Context, js jetstream.JetStream, st Store, o Options) error {
	s, err := js.Stream(ctx, st.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ensure %s %s: %w", st.Kind, st.Name, err)
	}
	info := s.CachedInfo()
	have, replicas, maxBytes := info.Config, o.replicas(), o.maxBytes(st.Name)
	refuse := func(what string, h, w int64) error {
		return &LowerError{Kind: st.Kind, Name: st.Name, What: what, Have: h, Want: w}
	}
	switch {
	case info.State.Bytes > uint64(maxBytes):
		e := refuse("max bytes", have.MaxBytes, maxBytes).(*LowerError)
		e.Held = int64(info.State.Bytes)
		return e
	case o.AllowLower:
		return nil
	case have.Replicas > replicas:
		return refuse("replicas", int64(have.Replicas), int64(replicas))
	case have.MaxBytes > 0 && maxBytes < have.MaxBytes:
		// An unlimited store being given a limit is not a shrink: bounding it is the point.
		return refuse("max bytes", have.MaxBytes, maxBytes)
	}
	return nil
}

// Verify checks that the topology exists as the pipeline needs it, without changing anything:
// every stream with its subjects, retention, discard policy and duplicate window, every bucket
// and object store, every durable consumer with its settings, at least o.Replicas replicas
// everywhere, and at least one durable consumer on AMR_RECORDS (interest retention drops records
// no consumer wants), or the downstream consumers o names. Size limits and ages are the
// operator's (amrctl topology apply) and not checked. The error wraps ErrMissing and/or
// ErrMismatch, naming every difference. Like Ensure, it asks a request again when its reply was
// lost.
func Verify(ctx context.Context, js jetstream.JetStream, o Options) error {
	js = patient{js}
	var errs []error
	missing := func(kind, name string) {
		errs = append(errs, fmt.Errorf("%s %s: %w", kind, name, ErrMissing))
	}
	mismatch := func(kind, name string, diffs []string) {
		if len(diffs) > 0 {
			errs = append(errs, fmt.Errorf("%s %s: %w: %s", kind, name, ErrMismatch, strings.Join(diffs, "; ")))
		}
	}
	want := map[string]jetstream.StreamConfig{}
	for _, cfg := range Streams(o) {
		want[cfg.Name] = cfg
	}
	if none, err := nothingApplied(ctx, js, o); err != nil || none {
		if err == nil {
			err = fmt.Errorf("the topology is not applied (none of its streams exists): %w", ErrMissing)
		}
		return err
	}
	for _, st := range Stores(o) {
		s, err := js.Stream(ctx, st.Stream)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing(st.Kind, st.Name)
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("verify %s %s: %w", st.Kind, st.Name, err))
			continue
		}
		have := s.CachedInfo().Config
		var diffs []string
		if cfg, ok := want[st.Stream]; ok && st.Kind == "stream" {
			diffs = streamDiffs(cfg, have)
		}
		if have.Replicas < o.replicas() {
			diffs = append(diffs, fmt.Sprintf("%d replicas; this service expects at least %d (-replicas %d): %s",
				have.Replicas, o.replicas(), o.replicas(), applyHint))
		}
		mismatch(st.Kind, st.Name, diffs)
	}
	consumers := Consumers()
	if o.Downstream != nil {
		consumers = append(consumers, DownstreamConsumers(o)...)
	}
	for _, want := range consumers {
		c, err := js.Consumer(ctx, want.Stream, want.Config.Durable)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
			missing("consumer", want.Config.Durable)
		case err != nil:
			errs = append(errs, fmt.Errorf("verify consumer %s: %w", want.Config.Durable, err))
		default:
			mismatch("consumer", want.Config.Durable, consumerDiffs(want.Config, c.CachedInfo().Config))
		}
	}
	if o.Downstream == nil {
		if err := verifyDownstream(ctx, js); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// nothingApplied reports whether no stream of the topology exists (the usual state of a new
// deployment, said in one line rather than one per stream).
func nothingApplied(ctx context.Context, js jetstream.JetStream, o Options) (bool, error) {
	for _, st := range Stores(o) {
		_, err := js.Stream(ctx, st.Stream)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return false, fmt.Errorf("verify %s %s: %w", st.Kind, st.Name, err)
		}
	}
	return true, nil
}

// verifyDownstream checks that AMR_RECORDS has a durable consumer to keep records for.
func verifyDownstream(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, StreamRecords)
	if err != nil {
		return nil // reported as missing above
	}
	lister := s.ListConsumers(ctx)
	for info := range lister.Info() {
		if info.Config.Durable != "" {
			return nil
		}
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("verify consumers of %s: %w", StreamRecords, err)
	}
	return fmt.Errorf("stream %s has no durable consumer: %w: records published now would be dropped (interest retention); run amrctl topology apply --downstream <name>",
		StreamRecords, ErrMissing)
}

// streamDiffs lists what of got differs from want in ways the pipeline depends on.
func streamDiffs(want, got jetstream.StreamConfig) []string {
	var d []string
	if !slices.Equal(got.Subjects, want.Subjects) {
		d = append(d, fmt.Sprintf("subjects %v, want %v", got.Subjects, want.Subjects))
	}
	d = differ(d, "retention", got.Retention, want.Retention)
	d = differ(d, "discard", got.Discard, want.Discard)
	d = differ(d, "duplicate window", got.Duplicates, want.Duplicates)
	d = differ(d, "storage", got.Storage, want.Storage)
	return withHint(d)
}

// consumerDiffs lists what of got differs from want among the settings the topology fixes.
// MaxAckPending is not among them: it bounds a consumer's messages in flight, a throughput knob
// the operator may turn (like a size limit), and no stage relies on its value (the relay's live
// jobs wait as message schedules, not as pending messages).
func consumerDiffs(want, got jetstream.ConsumerConfig) []string {
	var d []string
	filters := func(c jetstream.ConsumerConfig) []string {
		if c.FilterSubject != "" {
			return []string{c.FilterSubject}
		}
		return c.FilterSubjects
	}
	if !slices.Equal(filters(got), filters(want)) {
		d = append(d, fmt.Sprintf("filter %v, want %v", filters(got), filters(want)))
	}
	d = differ(d, "ack policy", got.AckPolicy, want.AckPolicy)
	d = differ(d, "ack wait", got.AckWait, want.AckWait)
	d = differ(d, "max deliver", got.MaxDeliver, want.MaxDeliver)
	d = differ(d, "deliver policy", got.DeliverPolicy, want.DeliverPolicy)
	return withHint(d)
}

// differ appends "<setting> <got>, want <want>" to d when the two differ.
func differ[T comparable](d []string, setting string, got, want T) []string {
	if got != want {
		d = append(d, fmt.Sprintf("%s %v, want %v", setting, got, want))
	}
	return d
}

// withHint ends a list of differences with how to mend them.
func withHint(d []string) []string {
	if len(d) > 0 {
		d[len(d)-1] += ": " + applyHint
	}
	return d
}

// BindConsumer returns the named durable consumer of the pipeline. It changes nothing: the
// topology is applied once (Ensure) and verified by the services; a consumer that does not exist
// is ErrMissing.
func BindConsumer(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Consumer, error) {
	spec, err := Consumer(name)
	if err != nil {
		return nil, err
	}
	c, err := js.Consumer(ctx, spec.Stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("bind consumer %s on %s: %w (run amrctl topology apply)", name, spec.Stream, ErrMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("bind consumer %s on %s: %w", name, spec.Stream, err)
	}
	return c, nil
}

// VerifyDownstream checks that name is a declared downstream consumer of AMR_RECORDS: a durable
// consumer with the settings of DownstreamConsumer(name), created by Ensure (amrctl topology apply
// --downstream). A reader never creates its own: with interest retention, records published
// before a consumer exists are not kept for it, so only the topology may declare one. The error
// wraps ErrMissing or ErrMismatch and says what to run.
func VerifyDownstream(ctx context.Context, js jetstream.JetStream, name string) error {
	if err := CheckToken(name); err != nil {
		return fmt.Errorf("downstream consumer name: %w", err)
	}
	want := DownstreamConsumer(name)
	c, err := js.Consumer(ctx, want.Stream, name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("downstream consumer %s on %s: %w: it is not declared in the topology; run amrctl topology apply --downstream %s",
			name, want.Stream, ErrMissing, name)
	case err != nil:
		return fmt.Errorf("downstream consumer %s on %s: %w", name, want.Stream, err)
	}
	if diffs := consumerDiffs(want.Config, c.CachedInfo().Config); len(diffs) > 0 {
		return fmt.Errorf("downstream consumer %s on %s: %w: %s (amrctl topology apply --downstream %s declares it)",
			name, want.Stream, ErrMismatch, strings.Join(diffs, "; "), name)
	}
	return nil
}

// ManifestsGone reports whether err, from a request to the decrypted manifests' object store,
// came of the store itself being gone: a standalone server does not keep a memory stream across
// a restart (a cluster keeps it in its metadata), so the store's requests get no responders.
func ManifestsGone(ctx context.Context, js jetstream.JetStream, err error) bool {
	if !errors.Is(err, nats.ErrNoResponders) {
		return false
	}
	_, err = patient{js}.Stream(ctx, ObjectStream(ObjectManifests))
	return errors.Is(err, jetstream.ErrStreamNotFound)
}

// RestoreManifests creates the decrypted manifests' object store as o configures it when a
// standalone server lost it with a restart (a memory stream's configuration is not kept), and
// reports whether it did. Any service may: the store holds only copies of Azure's blobs, which the
// parser asks to have decrypted again when they are missing. It does nothing when the store
// exists (however configured), when the rest of the topology is not applied either (applying is
// the operator's, or -apply-topology's), or on a cluster, which keeps its streams' configuration:
// a store missing there was deleted on purpose.
func RestoreManifests(ctx context.Context, js jetstream.JetStream, o Options) (bool, error) {
	if js.Conn().ConnectedClusterName() != "" {
		return false, nil
	}
	js = patient{js}
	cfg := manifestsStore(o)
	if _, err := js.Stream(ctx, ObjectStream(cfg.Bucket)); !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, err // there (JetStream would take an identical create for a success), or no answer
	}
	if _, err := js.Stream(ctx, StreamManifests); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			err = nil
		}
		return false, err
	}
	_, err := js.CreateObjectStore(ctx, cfg)
	switch {
	case errors.Is(err, jetstream.ErrBucketExists), errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
		return false, nil // another service was first
	case err != nil:
		return false, fmt.Errorf("create object store %s again: %w", cfg.Bucket, err)
	}
	return true, nil
}
