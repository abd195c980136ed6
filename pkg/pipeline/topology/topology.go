// Package topology names every JetStream stream, subject, consumer, key-value bucket and object
// store of the pipeline, and creates them. docs/pipeline.md is the human-readable copy of this file;
// change both together.
package topology

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Streams.
const (
	StreamPlans     = "AMR_PLANS"
	StreamSpecs     = "AMR_SPECS"
	StreamJobs      = "AMR_JOBS"
	StreamEvents    = "AMR_EVENTS"
	StreamManifests = "AMR_MANIFESTS"
	StreamRecords   = "AMR_RECORDS"
	StreamDone      = "AMR_DONE"
	StreamDLQ       = "AMR_DLQ"
	StreamChanges   = "AMR_CHANGES"
)

// Fixed subjects.
const (
	// SubjectPlanSubmit carries PlanRequest from users and from the submitter (re-plans).
	SubjectPlanSubmit = "amr.plans.submit"
	// SubjectPlanProbe carries ProbeResult from the parser to the planner.
	SubjectPlanProbe = "amr.plans.probe"
)

// Subject prefixes; a subject is prefix + "." + token(s). The builders below are the way to make one.
const (
	prefixSpecs     = "amr.specs"
	prefixJobs      = "amr.jobs.submitted"
	prefixSchedule  = "amr.jobs.schedule"
	prefixDue       = "amr.jobs.due"
	prefixEvents    = "amr.events"
	prefixManifests = "amr.manifests"
	prefixRecords   = "amr.records"
	prefixDone      = "amr.done"
	prefixDLQ       = "amr.dlq"
	prefixChanges   = "amr.changes"
)

// SharePoint event names used as the last token of an event subject (the names SharePoint gives
// them in GetMigrationJobProgress and queue messages).
const (
	EventFinishManifestFileUpload = "FinishManifestFileUpload"
	EventJobEnd                   = "JobEnd"
	EventJobFatalError            = "JobFatalError"
	EventJobCancelled             = "JobCancelled"
	// EventJobPostponed: SharePoint put the job back in its queue (its throttling of AMR jobs).
	EventJobPostponed = "JobPostponed"
	// EventJobChanged is the pipeline's own, never SharePoint's (the relay dead-letters names
	// outside SharePoint's set): a stage changed a job in a way that may let the parser complete it
	// (the relay confirmed its end or gave up on it, the decryptor failed one of its files).
	EventJobChanged = "AmrpipeJobChanged"
	// EventManifestExpired is the pipeline's own too: the parser found a package file's decrypted
	// copy gone from the object store and asks the decryptor to decrypt the file again from Azure.
	EventManifestExpired = "AmrpipeManifestExpired"
)

// Stage names. Each is the stage's binary, its durable consumer, its metrics "stage" label, its
// NATS connection name and its dead-letter subject amr.dlq.<stage>: one name everywhere.
const (
	StagePlanner   = "planner"
	StageSubmitter = "submitter"
	StageRelay     = "progress-relay"
	StageDecryptor = "decryptor"
	StageParser    = "parser"
)

// Durable consumers: a stage's consumer carries its name; the parser's second one reads job ends.
const (
	ConsumerPlanner   = StagePlanner
	ConsumerSubmitter = StageSubmitter
	ConsumerRelay     = StageRelay
	ConsumerDecryptor = StageDecryptor
	ConsumerParser    = StageParser
	ConsumerParserEnd = StageParser + "-end"
)

// Key-value buckets and the object store.
const (
	BucketKeys     = "amr_keys"
	BucketJobs     = "amr_jobs"
	BucketCursors  = "amr_cursors"
	BucketSeen     = "amr_seen"
	BucketTokens   = "amr_tokens"
	BucketThrottle = "amr_throttle"
	// BucketFailures counts each message's non-throttled failures per stage (pkg/pipeline/bus), because
	// JetStream's delivery counter also counts throttling waits and poll redeliveries.
	BucketFailures = "amr_failures"
	// BucketPlans holds the planner's first output per plan and probe result, so a redelivery
	// republishes the same specs.
	BucketPlans = "amr_plans"
	// BucketSubmissions maps a job spec to the AMR job created for it (or its re-plan), so a
	// redelivered spec creates no second job.
	BucketSubmissions = "amr_submissions"
	// BucketParseProgress holds how far the parser has published each package file it is parsing,
	// so a re-parse resumes after the last acknowledged batch instead of relying on the records
	// stream's duplicate window.
	BucketParseProgress = "amr_parse_progress"
	// ObjectManifests holds decrypted package files, named "<jobID>/<file>".
	ObjectManifests = "amr_manifests"
)

// SpecSubject is the subject of a plan's job specs.
func SpecSubject(planID string) string { return prefixSpecs + "." + planID }

// JobSubject is the subject of a submitted job, handed to the relay.
func JobSubject(jobID string) string { return prefixJobs + "." + jobID }

// ScheduleSubject is the subject of a live job's poll schedule (a JetStream message schedule whose
// target is DueSubject); host is HostToken of the job's SharePoint host, so the live jobs of one
// tenant can be counted by subject.
func ScheduleSubject(host, jobID string) string { return prefixSchedule + "." + host + "." + jobID }

// ScheduleFilter matches the poll schedules of every job (host "*") or of one host's jobs.
func ScheduleFilter(host string) string { return prefixSchedule + "." + host + ".*" }

// DueSubject is where a job's poll schedule delivers when the poll is due.
func DueSubject(jobID string) string { return prefixDue + "." + jobID }

// HostToken is a SharePoint host name as one subject token: lower case, dots as underscores (host
// names have no underscore, so the mapping is one to one).
func HostToken(host string) (string, error) {
	t := strings.ReplaceAll(strings.ToLower(host), ".", "_")
	if err := CheckToken(t); err != nil {
		return "", fmt.Errorf("host %q: %w", host, err)
	}
	return t, nil
}

// EventSubject is the subject of one event of a job; event is a SharePoint event name.
func EventSubject(jobID, event string) string { return prefixEvents + "." + jobID + "." + event }

// JobEventsFilter matches every event of one job (for amrctl).
func JobEventsFilter(jobID string) string { return EventSubject(jobID, "*") }

// ManifestSubject is the subject of a job's decrypted package files.
func ManifestSubject(jobID string) string { return prefixManifests + "." + jobID }

// RecordSubject is the subject of a job's record batches.
func RecordSubject(jobID string) string { return prefixRecords + "." + jobID }

// DoneSubject is the subject of a job's summary.
func DoneSubject(jobID string) string { return prefixDone + "." + jobID }

// ChangesSubject is the subject of an inventory pass's change set: the tenant (a host name) as a
// token ('.' and anything else a token cannot hold become '_'), then the pass id.
func ChangesSubject(tenant string, pass int64) string {
	tok := []byte(tenant)
	for i, c := range tok {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			tok[i] = '_'
		}
	}
	if len(tok) == 0 {
		tok = []byte("_")
	}
	return prefixChanges + "." + string(tok) + "." + strconv.FormatInt(pass, 10)
}

// DLQSubject is the dead-letter subject of a stage.
func DLQSubject(stage string) string { return prefixDLQ + "." + stage }

// ManifestObject is a package file's name in the ObjectManifests store.
func ManifestObject(jobID, file string) string { return jobID + "/" + file }

// ErrBadToken is returned by CheckToken.
var ErrBadToken = errors.New("not a valid subject token")

// MaxTokenLen bounds a subject token, and so the ids and names that become subjects and KV keys
// (job ids are 36 bytes, spec ids at most 128). NATS refuses a control line over 4 KiB and closes
// the connection for good, so an unbounded name from outside could stop a stage.
const MaxTokenLen = 128

// CheckToken reports whether s can be one token of a subject (a job, plan or list id, a stage or
// event name): 1 to MaxTokenLen bytes, no '.', no wildcard, no whitespace or control character.
// Callers check ids that come from outside (plan ids, SharePoint event names) before building a
// subject.
func CheckToken(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrBadToken)
	}
	if len(s) > MaxTokenLen {
		return fmt.Errorf("%w: %d bytes, over %d (%q…)", ErrBadToken, len(s), MaxTokenLen, s[:32])
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f
	}); i >= 0 {
		return fmt.Errorf("%w: %q has %q at %d", ErrBadToken, s, s[i], i)
	}
	return nil
}

// Retention periods and windows (docs/pipeline.md). Lifetimes come from lifetimes.go; week and
// month are no rule and kept only so that older code still compiles.
const (
	week  = 7 * 24 * time.Hour
	month = 30 * 24 * time.Hour
	// defaultDuplicates is the server's default window, stated so that Ensure converges on it.
	defaultDuplicates = 2 * time.Minute
	// longDuplicates covers a re-parse or re-relay after the 2-minute AckWait plus back-off.
	longDuplicates = 2 * time.Hour
	// AckWait is every consumer's AckWait; long handlers send InProgress (bus.KeepAlive).
	AckWait = 2 * time.Minute
	// MaxFailures is the default number of non-throttled failures after which a stage
	// dead-letters a message (enforced by pkg/pipeline/bus, not by MaxDeliver).
	MaxFailures = 10
	// MaxUnsettled is the default number of deliveries in a row that may end without settlement
	// (a crash, a closed connection) before pkg/pipeline/bus dead-letters the message.
	MaxUnsettled = 5
)

// Options shapes what Ensure creates and what Verify expects.
type Options struct {
	// Replicas of every stream, bucket and object store: 1 for the embedded server, 3 in a
	// production cluster. Zero means 1. Verify takes it as the least a stream must have.
	Replicas int
	// Storage is file storage unless set to jetstream.MemoryStorage (tests, never production).
	Storage jetstream.StorageType
	// ManifestsOnDisk keeps the decrypted manifests (ObjectManifests) in file storage. By default
	// they are held in memory (ManifestStorage says why).
	ManifestsOnDisk bool
	// MaxBytes overrides the size limit (DefaultMaxBytes) of streams, buckets and object stores
	// by name (AMR_RECORDS, amr_jobs, ...).
	MaxBytes map[string]int64
	// Downstream names the durable consumers of AMR_RECORDS that downstream systems read with;
	// records are kept until every one of them acknowledged them. Nil means
	// []string{DefaultDownstream}.
	Downstream []string
	// AllowLower lets Ensure lower the replicas and size limits of what exists (amrctl topology
	// apply --allow-lower); without it Ensure refuses (*LowerError). Services never set it.
	AllowLower bool
}

func (o Options) replicas() int { return max(o.Replicas, 1) }

func (o Options) downstream() []string {
	if o.Downstream == nil {
		return []string{DefaultDownstream}
	}
	return o.Downstream
}

// Streams returns the configuration of every stream. Each has a size limit and refuses new
// messages when full (DiscardNew): its publishers are throttled until space frees (pkg/pipeline/bus
// classifies the refusal), so nothing is dropped to make room. Work queues keep a message until
// it is done, never for a fixed age; AMR_RECORDS keeps a record until every downstream consumer
// acknowledged it (interest retention, docs/pipeline.md says why).
func Streams(o Options) []jetstream.StreamConfig {
	stream := func(name string, retention jetstream.RetentionPolicy, maxAge, dups time.Duration, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:       name,
			Subjects:   subjects,
			Retention:  retention,
			MaxAge:     maxAge,
			Duplicates: dups,
			Storage:    o.Storage,
			Replicas:   o.replicas(),
			Discard:    jetstream.DiscardNew,
			MaxBytes:   o.maxBytes(name),
		}
	}
	wq, lim, interest := jetstream.WorkQueuePolicy, jetstream.LimitsPolicy, jetstream.InterestPolicy
	// AMR_JOBS holds one message per live job at any time (its hand-off, its schedule or its due
	// poll): the relay's poll timers are JetStream message schedules, which need roll-ups, and a
	// newer schedule of a job replaces the older (one message per subject). Nothing waits in a
	// consumer's pending list, so MaxAckPending does not bound the jobs followed. Schedules
	// require DiscardOld: the one stream that cannot refuse a publish when full, so the submitter
	// checks for room before a hand-off (bus.Room), and one message per job bounds it anyway.
	jobs := func(c jetstream.StreamConfig) jetstream.StreamConfig {
		c.AllowMsgSchedules, c.AllowRollup, c.MaxMsgsPerSubject = true, true, 1
		c.Discard = jetstream.DiscardOld
		return c
	}
	return []jetstream.StreamConfig{
		stream(StreamPlans, wq, 0, defaultDuplicates, SubjectPlanSubmit, SubjectPlanProbe),
		stream(StreamSpecs, wq, 0, defaultDuplicates, prefixSpecs+".*"),
		jobs(stream(StreamJobs, wq, 0, defaultDuplicates, prefixJobs+".*", prefixSchedule+".*.*", prefixDue+".*")),
		stream(StreamEvents, lim, EventsMaxAge, longDuplicates, prefixEvents+".*.*"),
		stream(StreamManifests, wq, 0, defaultDuplicates, prefixManifests+".*"),
		stream(StreamRecords, interest, 0, longDuplicates, prefixRecords+".*"),
		stream(StreamDone, lim, JobRecordTTL, defaultDuplicates, prefixDone+".*"),
		stream(StreamDLQ, lim, DLQMaxAge, defaultDuplicates, prefixDLQ+".*"),
		stream(StreamChanges, lim, JobRecordTTL, defaultDuplicates, prefixChanges+".*.*"),
	}
}

// Buckets returns the configuration of every key-value bucket (JetStream makes key-value
// buckets refuse writes when full, as the streams do).
func Buckets(o Options) []jetstream.KeyValueConfig {
	bucket := func(name string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, TTL: ttl, History: 1, Storage: o.Storage, Replicas: o.replicas(),
			MaxBytes: o.maxBytes(name)}
	}
	return []jetstream.KeyValueConfig{
		bucket(BucketKeys, JobStateTTL),
		bucket(BucketJobs, JobRecordTTL),
		bucket(BucketCursors, JobStateTTL),
		bucket(BucketSeen, JobStateTTL),
		bucket(BucketTokens, TokenTTL),
		bucket(BucketThrottle, ThrottleTTL),
		bucket(BucketFailures, FailureTTL),
		bucket(BucketPlans, JobRecordTTL),
		bucket(BucketSubmissions, JobRecordTTL),
		// Parse progress is state kept to follow a job (the parser deletes an entry once its file
		// is folded into the job; jobstore.Forget the rest).
		bucket(BucketParseProgress, JobStateTTL),
	}
}

// ManifestStorage is the storage of the decrypted manifests: memory, unless o.ManifestsOnDisk.
//
// A decrypted manifest is a copy of a blob that stays in Azure until its job is parsed: one the
// store loses (a server restart drops a memory store's messages) is decrypted again at the
// parser's request (AmrpipeManifestExpired), as one that expired is. Keeping the copies on disk
// made the server write every manifest byte, read it back, checksum it twice and purge it: almost
// half of its work in BenchmarkParseAndPublish. In memory, and S2-compressed by the decryptor
// (pkg/pipeline/manifestcopy), the benchmark went from 126K to 165K records/s (docs/benchmarks.md).
// The price is memory on every server holding a replica, bounded by the store's size limit
// (DefaultMaxBytes), and re-downloads after a restart.
func (o Options) ManifestStorage() jetstream.StorageType {
	if o.ManifestsOnDisk {
		return o.Storage
	}
	return jetstream.MemoryStorage
}

// ObjectStores returns the configuration of every object store.
func ObjectStores(o Options) []jetstream.ObjectStoreConfig {
	return []jetstream.ObjectStoreConfig{manifestsStore(o)}
}

func manifestsStore(o Options) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{Bucket: ObjectManifests, TTL: ManifestTTL, Storage: o.ManifestStorage(), Replicas: o.replicas(),
		MaxBytes: o.maxBytes(ObjectManifests)}
}

// KVStream and ObjectStream are the names of the streams JetStream keeps a bucket and an object
// store in (for their size metrics and for purging by subject).
func KVStream(bucket string) string     { return "KV_" + bucket }
func ObjectStream(bucket string) string { return "OBJ_" + bucket }

// Store is one stream of the topology as JetStream stores it: a stream, or the stream behind a
// bucket or an object store.
type Store struct {
	// Kind is "stream", "bucket" or "object store".
	Kind string
	// Name is the operator's name: the stream's, the bucket's or the object store's.
	Name string
	// Stream is JetStream's stream name (Name, KV_<bucket> or OBJ_<bucket>).
	Stream string
}

// Stores lists every stream, bucket and object store with its JetStream stream name.
func Stores(o Options) []Store {
	var out []Store
	for _, s := range Streams(o) {
		out = append(out, Store{"stream", s.Name, s.Name})
	}
	for _, b := range Buckets(o) {
		out = append(out, Store{"bucket", b.Bucket, KVStream(b.Bucket)})
	}
	for _, b := range ObjectStores(o) {
		out = append(out, Store{"object store", b.Bucket, ObjectStream(b.Bucket)})
	}
	return out
}

// ConsumerSpec is a durable consumer and the stream it reads.
type ConsumerSpec struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// Consumers returns every durable consumer. All are pull, explicit ack, AckWait 2 min and
// MaxDeliver unlimited: throttling waits and the relay's poll redeliveries must not use up a
// delivery limit, so pkg/pipeline/bus counts real failures itself (BucketFailures).
func Consumers() []ConsumerSpec {
	consumer := func(stream, name, description string, filters ...string) ConsumerSpec {
		cfg := jetstream.ConsumerConfig{
			Durable:       name,
			Description:   description,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       AckWait,
			MaxDeliver:    -1,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			MaxAckPending: 1000,
		}
		switch len(filters) {
		case 0:
		case 1:
			cfg.FilterSubject = filters[0]
		default:
			cfg.FilterSubjects = filters
		}
		return ConsumerSpec{Stream: stream, Config: cfg}
	}
	return []ConsumerSpec{
		consumer(StreamPlans, ConsumerPlanner, "plans and probe results to job specs"),
		consumer(StreamSpecs, ConsumerSubmitter, "job specs to SharePoint AMR jobs"),
		consumer(StreamJobs, ConsumerRelay, "submitted jobs and their due polls", prefixJobs+".*", prefixDue+".*"),
		consumer(StreamEvents, ConsumerDecryptor, "uploaded package files to decrypt, and expired ones to decrypt again",
			EventSubject("*", EventFinishManifestFileUpload), EventSubject("*", EventManifestExpired)),
		consumer(StreamManifests, ConsumerParser, "decrypted package files to parse"),
		consumer(StreamEvents, ConsumerParserEnd, "job ends and changes that may close a job",
			EventSubject("*", EventJobEnd), EventSubject("*", EventJobFatalError), EventSubject("*", EventJobCancelled),
			EventSubject("*", EventJobChanged)),
	}
}

// Consumer returns the spec of the named durable consumer.
func Consumer(name string) (ConsumerSpec, error) {
	for _, c := range Consumers() {
		if c.Config.Durable == name {
			return c, nil
		}
	}
	return ConsumerSpec{}, fmt.Errorf("unknown consumer %q", name)
}

// DefaultDownstream is the durable consumer of AMR_RECORDS that downstream systems read with
// when the topology names no other (Options.Downstream).
const DefaultDownstream = "downstream"

// DownstreamConsumer is the spec of a downstream durable consumer of AMR_RECORDS: pull, explicit
// ack, every record from the start. The topology creates it so that records published before its
// reader first connects are kept for it (interest retention drops what no consumer wants).
func DownstreamConsumer(name string) ConsumerSpec {
	return ConsumerSpec{Stream: StreamRecords, Config: jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "downstream reader of metadata records; records are kept until it acknowledged them",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1000,
		FilterSubject: RecordSubject("*"),
	}}
}

// ReaderConsumer is the configuration of an ephemeral reader of AMR_RECORDS that must neither
// hold records back nor take them from the downstream consumers (amrctl tail, the JSONL sink of
// amrctl dev): no acknowledgements (a record delivered counts as read for it), every record from
// the start, removed by the server a minute after its reader went away. Its replica count is the
// stream's (zero: inherited), because JetStream requires it of an interest stream's consumers, so
// an ordered consumer (always one replica) cannot read an R3 records stream.
func ReaderConsumer(filters ...string) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	}
	if len(filters) == 1 {
		cfg.FilterSubject = filters[0]
	} else {
		cfg.FilterSubjects = filters
	}
	return cfg
}

// DownstreamConsumers returns the downstream consumers of o (DefaultDownstream unless named).
func DownstreamConsumers(o Options) []ConsumerSpec {
	var out []ConsumerSpec
	for _, name := range o.downstream() {
		out = append(out, DownstreamConsumer(name))
	}
	return out
}

// ManifestChunkSize is the chunk size of decrypted manifests in the object store: larger than the
// 128 KiB default so that reading a 25 MB manifest takes 50 messages, not 200 (the parser's reads
// cost per message), and well under the default 1 MiB max payload.
const ManifestChunkSize = 512 << 10
