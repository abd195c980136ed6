package topology

import "time"

const day = 24 * time.Hour

// SharePoint's documented lifetimes (docs/amr-protocol.md §6.1). Every TTL and MaxAge of the
// topology is one of these or follows from them (the table in docs/pipeline.md gives the rule of
// each); this package cannot import pkg/sharepoint, so pkg/stage's tests check the copies there
// agree.
const (
	// StatusRetention: SharePoint keeps a job's status and events "valid for less than 5 days"
	// (GetMigrationJobProgress, error -2147213146 after that) [C PROGRESS]. Once it is gone the
	// relay can no longer follow the job, so no state kept to follow it is useful for longer
	// than this after it was last needed.
	StatusRetention = 5 * day
	// ContainerRetentionMin and ContainerRetentionMax: the Azure containers
	// ProvisionMigrationContainers gives a job are deleted 30 to 90 days after the job [C AZURE]:
	// a job's encrypted manifests, and so anything that could be rebuilt from them, exist for at
	// least 30 and at most 90 days.
	ContainerRetentionMin = 30 * day
	ContainerRetentionMax = 90 * day
	// ChangeLogWindow: SharePoint's change log covers 60 days; an older change token is refused
	// with -2146232832 [C AMR-REF] (sizing.DefaultTokenMaxAge).
	ChangeLogWindow = 60 * day
	// MaxRetryAfter is the longest Retry-After the SharePoint client honours before capping it
	// (spo.DefaultMaxRetryAfter, -sp-max-retry-after): no throttling pause lasts longer.
	MaxRetryAfter = time.Hour
)

// Lifetimes of the topology, each derived from one rule above (docs/pipeline.md, "Lifetimes").
const (
	// JobStateTTL bounds the state kept to follow one job: its wrapped key (amr_keys), progress
	// cursor (amr_cursors), seen-event markers (amr_seen) and parse progress. All but the key are
	// removed by jobstore.Forget once the job is final (the key lives its KeyLifetime, for late
	// messages and late orphans); the TTL is only a backstop for a job nothing forgets, set past the longest a job's manifests can exist (its container), so that no live
	// job meets it (7 days was a cliff for a job queued or running long).
	JobStateTTL = ContainerRetentionMax
	// KeyLifetime is the validity of a job's wrapped key (the submitter's -key-ttl default): a
	// key opens only its job's manifests, which exist at most ContainerRetentionMax.
	KeyLifetime = JobStateTTL
	// JobRecordTTL keeps a job's record (amr_jobs), the planner's plannings (amr_plans), the
	// spec-to-job submissions (amr_submissions) and job summaries (AMR_DONE) for as long as the
	// job's manifests may exist, counted from the last change: `amrctl jobs` and `amrctl plan
	// status` can explain every job whose output can still be reproduced.
	JobRecordTTL = ContainerRetentionMax
	// EventsMaxAge: events relayed from SharePoint are kept as long as SharePoint keeps them. An
	// event no stage read in that time belongs to a job whose status SharePoint dropped too.
	EventsMaxAge = StatusRetention
	// ManifestTTL: a decrypted manifest waits for its parser as long as the job's status lives
	// at SharePoint; the parser deletes it once parsed, so the TTL only removes what no parser
	// will read (files of failed jobs, a repeated decryption).
	ManifestTTL = StatusRetention
	// DLQMaxAge: a dead letter is worth inspecting and replaying while the job's container
	// certainly still holds its blobs.
	DLQMaxAge = ContainerRetentionMin
	// TokenTTL: a change token older than the change log is refused by SharePoint, so keeping
	// it longer helps no incremental pass.
	TokenTTL = ChangeLogWindow
	// ThrottleTTL: a host's pause never lasts longer than the longest Retry-After honoured.
	ThrottleTTL = MaxRetryAfter
	// FailureTTL: a message's failure count expires 5 days after its latest counted failure, as
	// a job's status does at SharePoint after its end; an expired count only grants more tries,
	// it never loses the message.
	FailureTTL = StatusRetention
)
