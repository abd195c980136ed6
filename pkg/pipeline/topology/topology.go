// Package topology names every JetStream stream, subject, consumer, key-value bucket and object
// store of the pipeline, and creates them. docs/pipeline.md is the human-readable copy of this file;
// change both together.
package topology

import (
	"errors"
	"fmt"
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
)

// SharePoint event names used as the last token of an event subject (the names SharePoint gives
// them in GetMigrationJobProgress and queue messages).
const (
	EventFinishManifestFileUpload = "FinishManifestFileUpload"
	EventJobEnd                   = "JobEnd"
	EventJobFatalError            = "JobFatalError"
	EventJobCancelled             = "JobCancelled"
	// EventJobChanged is the pipeline's own, never SharePoint's (the relay dead-letters names
	// outside SharePoint's set): a stage changed a job in a way that may let the parser complete it
	// (the relay confirmed its end or gave up on it, the decryptor failed one of its files).
	EventJobChanged = "AmrpipeJobChanged"
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

// Retention periods and windows (docs/pipeline.md).
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

// Options shapes what Ensure creates.
type Options struct {
	// Replicas of every stream, bucket and object store: 1 for the embedded server, 3 in a
	// production cluster. Zero means 1.
	Replicas int
	// Storage is file storage unless set to jetstream.MemoryStorage (tests, never production).
	Storage jetstream.StorageType
}

func (o Options) replicas() int { return max(o.Replicas, 1) }

// Streams returns the configuration of every stream.
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
			Discard:    jetstream.DiscardOld,
		}
	}
	wq, lim := jetstream.WorkQueuePolicy, jetstream.LimitsPolicy
	// AMR_JOBS holds one message per live job at any time (its hand-off, its schedule or its due
	// poll): the relay's poll timers are JetStream message schedules, which need roll-ups, and a
	// newer schedule of a job replaces the older (one message per subject). Nothing waits in a
	// consumer's pending list, so MaxAckPending does not bound the jobs followed, and no message
	// lives longer than one poll interval, so MaxAge is no job's lifetime.
	jobs := func(c jetstream.StreamConfig) jetstream.StreamConfig {
		c.AllowMsgSchedules, c.AllowRollup, c.MaxMsgsPerSubject = true, true, 1
		return c
	}
	return []jetstream.StreamConfig{
		stream(StreamPlans, wq, week, defaultDuplicates, SubjectPlanSubmit, SubjectPlanProbe),
		stream(StreamSpecs, wq, week, defaultDuplicates, prefixSpecs+".*"),
		jobs(stream(StreamJobs, wq, week, defaultDuplicates, prefixJobs+".*", prefixSchedule+".*.*", prefixDue+".*")),
		stream(StreamEvents, lim, week, longDuplicates, prefixEvents+".*.*"),
		stream(StreamManifests, wq, week, defaultDuplicates, prefixManifests+".*"),
		stream(StreamRecords, lim, week, longDuplicates, prefixRecords+".*"),
		stream(StreamDone, lim, month, defaultDuplicates, prefixDone+".*"),
		stream(StreamDLQ, lim, month, defaultDuplicates, prefixDLQ+".*"),
	}
}

// Buckets returns the configuration of every key-value bucket.
func Buckets(o Options) []jetstream.KeyValueConfig {
	bucket := func(name string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, TTL: ttl, History: 1, Storage: o.Storage, Replicas: o.replicas()}
	}
	return []jetstream.KeyValueConfig{
		bucket(BucketKeys, week),
		bucket(BucketJobs, month),
		bucket(BucketCursors, week),
		bucket(BucketSeen, week),
		bucket(BucketTokens, 0),
		bucket(BucketThrottle, time.Hour),
		bucket(BucketFailures, week),
		bucket(BucketPlans, week),
		bucket(BucketSubmissions, month),
	}
}

// ObjectStores returns the configuration of every object store.
func ObjectStores(o Options) []jetstream.ObjectStoreConfig {
	return []jetstream.ObjectStoreConfig{
		{Bucket: ObjectManifests, TTL: 24 * time.Hour, Storage: o.Storage, Replicas: o.replicas()},
	}
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
		consumer(StreamEvents, ConsumerDecryptor, "uploaded package files to decrypt",
			EventSubject("*", EventFinishManifestFileUpload)),
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

// ManifestChunkSize is the chunk size of decrypted manifests in the object store: larger than the
// 128 KiB default so that reading a 25 MB manifest takes 50 messages, not 200 (the parser's reads
// cost per message), and well under the default 1 MiB max payload.
const ManifestChunkSize = 512 << 10
