package topology_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// docTable is one table of docs/pipeline.md: its header cells and rows.
type docTable struct {
	header []string
	rows   [][]string
}

// col returns the cell of row r under the header name (the test fails when there is none).
func (d docTable) col(t *testing.T, r []string, name string) string {
	t.Helper()
	i := slices.Index(d.header, name)
	if i < 0 || i >= len(r) {
		t.Fatalf("docs/pipeline.md: table %q has no column %q", d.header[0], name)
	}
	return r[i]
}

// docTables reads the tables of docs/pipeline.md, keyed by the first header cell.
func docTables(t *testing.T) map[string]docTable {
	t.Helper()
	data, err := os.ReadFile("../../../docs/pipeline.md")
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]docTable{}
	var current string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "|") {
			current = ""
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case current == "":
			current = cells[0]
			tables[current] = docTable{header: cells}
		case strings.HasPrefix(cells[0], "---"):
		default:
			tb := tables[current]
			tb.rows = append(tb.rows, cells)
			tables[current] = tb
		}
	}
	return tables
}

var ticked = regexp.MustCompile("`([^`]+)`")

// names returns the backticked names of a cell, with <placeholders> as the * wildcard.
func names(cell string) []string {
	var out []string
	for _, m := range ticked.FindAllStringSubmatch(cell, -1) {
		out = append(out, regexp.MustCompile(`<[^>]+>`).ReplaceAllString(m[1], "*"))
	}
	return out
}

func docDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	units := map[string]time.Duration{"min": time.Minute, "h": time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour}
	if s == "none" {
		return 0
	}
	var n int
	var unit string
	if _, err := fmt.Sscanf(s, "%d %s", &n, &unit); err != nil {
		t.Fatalf("duration %q in docs/pipeline.md: %v", s, err)
	}
	d, ok := units[unit]
	if !ok {
		t.Fatalf("duration %q in docs/pipeline.md", s)
	}
	return time.Duration(n) * d
}

func docBytes(t *testing.T, s string) int64 {
	t.Helper()
	n, err := topology.ParseBytes(s)
	if err != nil {
		t.Fatalf("size in docs/pipeline.md: %v", err)
	}
	return n
}

// matchRows checks that the doc's rows and the code's items name the same things, and runs check
// on each pair.
func matchRows[T any](t *testing.T, what string, rows [][]string, code map[string]T, check func(name string, row []string, v T)) {
	t.Helper()
	if len(rows) != len(code) {
		t.Errorf("doc lists %d %s, code %d", len(rows), what, len(code))
	}
	for _, r := range rows {
		name := names(r[0])[0]
		v, ok := code[name]
		if !ok {
			t.Errorf("doc's %s %s not in code", what, name)
			continue
		}
		check(name, r, v)
	}
}

// TestDocMatchesCode keeps docs/pipeline.md the true list of the topology.
func TestDocMatchesCode(t *testing.T) {
	tables := docTables(t)
	o := topology.Options{}

	streams := map[string]jetstream.StreamConfig{}
	for _, s := range topology.Streams(o) {
		streams[s.Name] = s
	}
	st := tables["stream"]
	matchRows(t, "streams", st.rows, streams, func(name string, r []string, cfg jetstream.StreamConfig) {
		if got := names(st.col(t, r, "subjects")); !slices.Equal(got, cfg.Subjects) {
			t.Errorf("%s subjects: doc %v, code %v", name, got, cfg.Subjects)
		}
		retention := st.col(t, r, "retention")
		wantRetention := map[string]jetstream.RetentionPolicy{"work queue": jetstream.WorkQueuePolicy, "limits": jetstream.LimitsPolicy,
			"interest": jetstream.InterestPolicy}[retention]
		if cfg.Retention != wantRetention {
			t.Errorf("%s retention: doc %q, code %v", name, retention, cfg.Retention)
		}
		if d := docDuration(t, st.col(t, r, "max age")); d != cfg.MaxAge {
			t.Errorf("%s max age: doc %s, code %s", name, st.col(t, r, "max age"), cfg.MaxAge)
		}
		if d := docDuration(t, st.col(t, r, "dup window")); d != cfg.Duplicates {
			t.Errorf("%s dup window: doc %s, code %s", name, st.col(t, r, "dup window"), cfg.Duplicates)
		}
		if n := docBytes(t, st.col(t, r, "max bytes")); n != cfg.MaxBytes {
			t.Errorf("%s max bytes: doc %s, code %s", name, st.col(t, r, "max bytes"), topology.FormatBytes(cfg.MaxBytes))
		}
		if cfg.Discard != jetstream.DiscardNew && name != topology.StreamJobs {
			t.Errorf("%s discards %v; the doc says every stream refuses new messages when full", name, cfg.Discard)
		}
	})

	consumers := map[string]topology.ConsumerSpec{}
	for _, c := range topology.Consumers() {
		consumers[c.Config.Durable] = c
	}
	d := topology.DownstreamConsumer(topology.DefaultDownstream)
	consumers[d.Config.Durable] = d
	ct := tables["consumer"]
	matchRows(t, "consumers", ct.rows, consumers, func(name string, r []string, c topology.ConsumerSpec) {
		if s := names(ct.col(t, r, "stream"))[0]; s != c.Stream {
			t.Errorf("%s stream: doc %s, code %s", name, s, c.Stream)
		}
		filters := c.Config.FilterSubjects
		if c.Config.FilterSubject != "" {
			filters = []string{c.Config.FilterSubject}
		}
		if got := names(ct.col(t, r, "filter")); !slices.Equal(got, filters) {
			t.Errorf("%s filter: doc %v, code %v", name, got, filters)
		}
		if c.Config.MaxDeliver != -1 || c.Config.AckWait != topology.AckWait || c.Config.AckPolicy != jetstream.AckExplicitPolicy {
			t.Errorf("%s: MaxDeliver %d AckWait %s ack %v, doc says unlimited, 2 min, explicit", name, c.Config.MaxDeliver, c.Config.AckWait, c.Config.AckPolicy)
		}
	})

	type store struct {
		ttl      time.Duration
		maxBytes int64
	}
	stores := map[string]store{}
	for _, b := range topology.Buckets(o) {
		stores[b.Bucket] = store{b.TTL, b.MaxBytes}
	}
	for _, s := range topology.ObjectStores(o) {
		stores[s.Bucket] = store{s.TTL, s.MaxBytes}
	}
	bt := tables["bucket"]
	matchRows(t, "buckets and object stores", bt.rows, stores, func(name string, r []string, want store) {
		if d := docDuration(t, bt.col(t, r, "TTL")); d != want.ttl {
			t.Errorf("%s TTL: doc %s, code %s", name, bt.col(t, r, "TTL"), want.ttl)
		}
		if n := docBytes(t, bt.col(t, r, "max bytes")); n != want.maxBytes {
			t.Errorf("%s max bytes: doc %s, code %s", name, bt.col(t, r, "max bytes"), topology.FormatBytes(want.maxBytes))
		}
	})
}

func TestEnsureIsIdempotentAndRoutes(t *testing.T) {
	env := testenv.StartJetStream(t) // the first Ensure
	ctx := context.Background()
	if err := topology.Ensure(ctx, env.JS, topology.Options{}); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	for _, want := range topology.Streams(topology.Options{}) {
		s, err := env.JS.Stream(ctx, want.Name)
		if err != nil {
			t.Fatal(err)
		}
		got := s.CachedInfo().Config
		if got.Retention != want.Retention || got.MaxAge != want.MaxAge || got.Duplicates != want.Duplicates || got.Replicas != 1 || !slices.Equal(got.Subjects, want.Subjects) {
			t.Errorf("stream %s on the server: %+v", want.Name, got)
		}
	}
	job := "0b6c1f0e-8d35-4c0a-9f8a-6f1a5d2e7c11"
	routes := map[string]string{
		topology.SubjectPlanSubmit:                                         topology.StreamPlans,
		topology.SubjectPlanProbe:                                          topology.StreamPlans,
		topology.SpecSubject("plan1"):                                      topology.StreamSpecs,
		topology.JobSubject(job):                                           topology.StreamJobs,
		topology.EventSubject(job, topology.EventJobEnd):                   topology.StreamEvents,
		topology.ManifestSubject(job):                                      topology.StreamManifests,
		topology.RecordSubject(job):                                        topology.StreamRecords,
		topology.DoneSubject(job):                                          topology.StreamDone,
		topology.DLQSubject("decryptor"):                                   topology.StreamDLQ,
		topology.ChangesSubject("contoso.sharepoint.com", 2):               topology.StreamChanges,
		topology.EventSubject(job, topology.EventFinishManifestFileUpload): topology.StreamEvents,
		topology.EventSubject(job, topology.EventManifestExpired):          topology.StreamEvents,
	}
	for subject, stream := range routes {
		ack, err := env.JS.Publish(ctx, subject, []byte("x"))
		if err != nil {
			t.Errorf("publish %s: %v", subject, err)
			continue
		}
		if ack.Stream != stream {
			t.Errorf("%s stored in %s, want %s", subject, ack.Stream, stream)
		}
	}
	// The decryptor sees upload events and the parser's requests for an expired copy; the parser's
	// end consumer the endings.
	for name, want := range map[string]uint64{topology.ConsumerDecryptor: 2, topology.ConsumerParserEnd: 1} {
		c, err := topology.BindConsumer(ctx, env.JS, name)
		if err != nil {
			t.Fatal(err)
		}
		// A consumer counts a stored message a moment after the publish is acknowledged (seen
		// on a loaded machine): wait for the count, fail on too many.
		var pending uint64
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("consumer %s to have %d pending", name, want), func() bool {
			info, err := c.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pending = info.NumPending
			return pending >= want
		})
		if pending != want {
			t.Errorf("consumer %s has %d pending, want %d", name, pending, want)
		}
	}
	if _, err := topology.BindConsumer(ctx, env.JS, "nobody"); err == nil {
		t.Error("BindConsumer of an unknown name succeeded")
	}
}

func TestEnsureUsesReplicas(t *testing.T) {
	env := testenv.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// One server cannot hold three replicas: the option reaches the server.
	if err := topology.Ensure(ctx, env.JS, topology.Options{Replicas: 3}); err == nil {
		t.Fatal("Ensure with 3 replicas on a single server succeeded")
	}
}

func TestCheckToken(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"0b6c1f0e-8d35-4c0a-9f8a-6f1a5d2e7c11", true},
		{"FinishManifestFileUpload", true},
		{"parser-end", true},
		{"", false},
		{"a.b", false},
		{"*", false},
		{"a>", false},
		{"a b", false},
		{"tab\t", false},
		{strings.Repeat("a", topology.MaxTokenLen), true},
		{strings.Repeat("a", topology.MaxTokenLen+1), false},
		{strings.Repeat("JobEnd", 700), false}, // a 4 KB name would close the NATS connection
	}
	for _, tt := range tests {
		err := topology.CheckToken(tt.in)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, topology.ErrBadToken)) {
			t.Errorf("CheckToken(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

// TestLifetimesTableMatchesCode: the "Lifetimes" table of docs/pipeline.md gives every lifetime
// constant with its value.
func TestLifetimesTableMatchesCode(t *testing.T) {
	code := map[string]time.Duration{
		"StatusRetention": topology.StatusRetention, "ContainerRetentionMin": topology.ContainerRetentionMin,
		"ContainerRetentionMax": topology.ContainerRetentionMax, "ChangeLogWindow": topology.ChangeLogWindow,
		"MaxRetryAfter": topology.MaxRetryAfter, "JobStateTTL": topology.JobStateTTL, "KeyLifetime": topology.KeyLifetime,
		"JobRecordTTL": topology.JobRecordTTL, "EventsMaxAge": topology.EventsMaxAge, "ManifestTTL": topology.ManifestTTL,
		"DLQMaxAge": topology.DLQMaxAge, "TokenTTL": topology.TokenTTL, "ThrottleTTL": topology.ThrottleTTL,
		"FailureTTL": topology.FailureTTL,
	}
	lt := docTables(t)["lifetime"]
	matchRows(t, "lifetimes", lt.rows, code, func(name string, r []string, want time.Duration) {
		if d := docDuration(t, lt.col(t, r, "value")); d != want {
			t.Errorf("%s: doc %s, code %s", name, lt.col(t, r, "value"), want)
		}
	})
	// Nothing of a live job may expire before SharePoint's own lifetimes for it.
	for _, b := range topology.Buckets(topology.Options{}) {
		switch b.Bucket {
		case topology.BucketKeys, topology.BucketCursors, topology.BucketSeen, topology.BucketJobs:
			if b.TTL < topology.ContainerRetentionMax {
				t.Errorf("bucket %s expires after %s, before a job's manifests can be gone", b.Bucket, b.TTL)
			}
		}
	}
	for _, s := range topology.Streams(topology.Options{}) {
		if s.Retention != jetstream.LimitsPolicy && s.MaxAge != 0 {
			t.Errorf("stream %s removes unread work after %s", s.Name, s.MaxAge)
		}
	}
}

func TestParseAndFormatBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"6 GiB", 6 << 30}, {"6GiB", 6 << 30}, {"512MiB", 512 << 20}, {"64 KiB", 64 << 10}, {"20GB", 20e9},
		{"1048576", 1 << 20}, {"100 B", 100}, {"1TiB", 1 << 40},
	}
	for _, tt := range tests {
		got, err := topology.ParseBytes(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1GiB", "0", "6 GB GiB", "1.5GiB", "9999999999TiB"} {
		if _, err := topology.ParseBytes(bad); !errors.Is(err, topology.ErrBadSize) {
			t.Errorf("ParseBytes(%q) = %v, want ErrBadSize", bad, err)
		}
	}
	for n, want := range map[int64]string{6 << 30: "6 GiB", 1536 << 20: "1536 MiB", 1000: "1000 B", 16 << 20: "16 MiB"} {
		if got := topology.FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
		if back, err := topology.ParseBytes(topology.FormatBytes(n)); err != nil || back != n {
			t.Errorf("ParseBytes(FormatBytes(%d)) = %d, %v", n, back, err)
		}
	}
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamInfo {
	t.Helper()
	// Asked up to three times, 5 s each (jetstream's default): on a loaded cluster a reply can be
	// lost, as Ensure's own requests can (patient.go).
	var err error
	for range 3 {
		var s jetstream.Stream
		if s, err = js.Stream(context.Background(), name); err == nil {
			return *s.CachedInfo()
		}
	}
	t.Fatal(err)
	return jetstream.StreamInfo{}
}

// TestEnsureNeverShrinks: a limit that exists is never lowered without AllowLower, never below
// what a stream holds even with it, and an unlimited stream of an older topology gets its limit.
func TestEnsureNeverShrinks(t *testing.T) {
	env := testenv.StartJetStreamWith(t, topology.Options{MaxBytes: map[string]int64{topology.StreamDLQ: 8 * topology.MiB}})
	ctx := context.Background()

	// Back to the 1 GiB default is a raise; a smaller limit than the one there is refused.
	if err := topology.Ensure(ctx, env.JS, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	err := topology.Ensure(ctx, env.JS, topology.Options{MaxBytes: map[string]int64{topology.BucketJobs: topology.MiB}})
	var le *topology.LowerError
	if !errors.As(err, &le) || !errors.Is(err, topology.ErrLower) || le.Name != topology.BucketJobs || le.Kind != "bucket" {
		t.Fatalf("shrinking amr_jobs: %v, want a LowerError naming it", err)
	}
	for _, want := range []string{"bucket amr_jobs has a size limit of 1 GiB", "1 MiB", "amrctl topology apply", "--allow-lower"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if got := streamConfig(t, env.JS, topology.KVStream(topology.BucketJobs)).Config.MaxBytes; got != topology.GiB {
		t.Fatalf("refused apply changed amr_jobs to %d bytes", got)
	}
	if err := topology.Ensure(ctx, env.JS, topology.Options{AllowLower: true, MaxBytes: map[string]int64{topology.BucketJobs: topology.MiB}}); err != nil {
		t.Fatalf("shrinking with AllowLower: %v", err)
	}

	// Never below what a stream holds: JetStream would delete its oldest messages.
	for i := range 4 {
		if _, err := env.JS.Publish(ctx, topology.DLQSubject("x"), make([]byte, 1000), jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	err = topology.Ensure(ctx, env.JS, topology.Options{AllowLower: true, MaxBytes: map[string]int64{topology.StreamDLQ: 2 * topology.KiB}})
	if !errors.As(err, &le) || le.Held == 0 || !strings.Contains(err.Error(), "delete its oldest messages") {
		t.Fatalf("a limit below the stored bytes: %v", err)
	}
	if n := streamConfig(t, env.JS, topology.StreamDLQ).State.Msgs; n != 4 {
		t.Fatalf("DLQ holds %d messages after the refusal, want 4", n)
	}
}

// TestEnsureUpgradesAnOlderTopology: streams of the topology before size limits (unlimited,
// 7-day max age, limits retention for records) take the new configuration in place, keeping
// their messages.
func TestEnsureUpgradesAnOlderTopology(t *testing.T) {
	env := bareJetStream(t)
	ctx := context.Background()
	for _, cfg := range topology.Streams(topology.Options{}) {
		cfg.MaxBytes, cfg.MaxAge, cfg.Discard = -1, 7*24*time.Hour, jetstream.DiscardOld
		if cfg.Retention == jetstream.InterestPolicy {
			cfg.Retention = jetstream.LimitsPolicy
		}
		if _, err := env.JS.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.JS.Publish(ctx, topology.RecordSubject("job1"), []byte("r"), jetstream.WithMsgID("r1")); err != nil {
		t.Fatal(err)
	}
	if err := topology.Ensure(ctx, env.JS, topology.Options{}); err != nil {
		t.Fatalf("applying over an older topology: %v", err)
	}
	if err := topology.Verify(ctx, env.JS, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	info := streamConfig(t, env.JS, topology.StreamRecords)
	if info.Config.Retention != jetstream.InterestPolicy || info.Config.MaxBytes != 6*topology.GiB || info.Config.MaxAge != 0 || info.State.Msgs != 1 {
		t.Fatalf("records after the upgrade: %+v, %d messages", info.Config, info.State.Msgs)
	}
}

// TestVerify: a service's check finds what is missing, what is configured otherwise, and a
// records stream no durable consumer keeps records for, and changes nothing.
func TestVerify(t *testing.T) {
	env := bareJetStream(t)
	ctx := context.Background()

	err := topology.Verify(ctx, env.JS, topology.Options{})
	if !errors.Is(err, topology.ErrMissing) || errors.Is(err, topology.ErrMismatch) || !strings.Contains(err.Error(), "not applied") {
		t.Fatalf("Verify on an empty server = %v, want only ErrMissing, saying the topology is not applied", err)
	}
	// Part of it: each missing part is named.
	if _, err := env.JS.CreateStream(ctx, topology.Streams(topology.Options{})[0]); err != nil {
		t.Fatal(err)
	}
	err = topology.Verify(ctx, env.JS, topology.Options{})
	for _, name := range []string{"stream AMR_RECORDS", "bucket amr_jobs", "object store amr_manifests", "consumer parser-end"} {
		if !errors.Is(err, topology.ErrMissing) || !strings.Contains(err.Error(), name) {
			t.Errorf("Verify on a partial topology does not name %s: %v", name, err)
		}
	}
	if _, err := env.JS.Stream(ctx, topology.StreamSpecs); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("Verify created something: %v", err)
	}
	if _, err := topology.BindConsumer(ctx, env.JS, topology.ConsumerParser); !errors.Is(err, topology.ErrMissing) {
		t.Fatalf("BindConsumer on an empty server = %v, want ErrMissing", err)
	}

	if err := topology.Ensure(ctx, env.JS, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := topology.Verify(ctx, env.JS, topology.Options{}); err != nil {
		t.Fatalf("Verify after Ensure: %v", err)
	}
	if err := topology.Verify(ctx, env.JS, topology.Options{Replicas: 3}); !errors.Is(err, topology.ErrMismatch) || !strings.Contains(err.Error(), "1 replicas; this service expects at least 3") {
		t.Fatalf("Verify expecting 3 replicas of R1 streams = %v", err)
	}

	// A consumer configured otherwise (an older topology's filter).
	spec, err := topology.Consumer(topology.ConsumerParserEnd)
	if err != nil {
		t.Fatal(err)
	}
	old := spec.Config
	old.FilterSubjects = old.FilterSubjects[:3]
	if _, err := env.JS.UpdateConsumer(ctx, spec.Stream, old); err != nil {
		t.Fatal(err)
	}
	err = topology.Verify(ctx, env.JS, topology.Options{})
	if !errors.Is(err, topology.ErrMismatch) || !strings.Contains(err.Error(), "consumer parser-end") || !strings.Contains(err.Error(), "amrctl topology apply") {
		t.Fatalf("Verify with an old consumer filter = %v", err)
	}
	if err := topology.Ensure(ctx, env.JS, topology.Options{}); err != nil {
		t.Fatal(err)
	}

	// No durable consumer on the records stream: records would be dropped.
	if err := env.JS.DeleteConsumer(ctx, topology.StreamRecords, topology.DefaultDownstream); err != nil {
		t.Fatal(err)
	}
	err = topology.Verify(ctx, env.JS, topology.Options{})
	if !errors.Is(err, topology.ErrMissing) || !strings.Contains(err.Error(), "no durable consumer") {
		t.Fatalf("Verify without a downstream consumer = %v", err)
	}
	if err := topology.Verify(ctx, env.JS, topology.Options{Downstream: []string{"vendor"}}); !errors.Is(err, topology.ErrMissing) || !strings.Contains(err.Error(), "consumer vendor") {
		t.Fatalf("Verify of a named downstream consumer that does not exist = %v", err)
	}
	if err := topology.Ensure(ctx, env.JS, topology.Options{Downstream: []string{"vendor"}}); err != nil {
		t.Fatal(err)
	}
	if err := topology.Verify(ctx, env.JS, topology.Options{}); err != nil {
		t.Fatalf("Verify with another downstream consumer: %v", err)
	}
}

// TestRecordsKeptUntilEveryDownstreamConsumerRead: interest retention keeps a record until each
// declared downstream consumer acknowledged it, however many ordered readers come and go.
func TestRecordsKeptUntilEveryDownstreamConsumerRead(t *testing.T) {
	env := testenv.StartJetStreamWith(t, topology.Options{Downstream: []string{"vendor-a", "vendor-b"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 5 {
		if _, err := env.JS.Publish(ctx, topology.RecordSubject("job1"), []byte("r"), jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	msgs := func() uint64 { return streamConfig(t, env.JS, topology.StreamRecords).State.Msgs }
	read := func(name string) {
		t.Helper()
		c, err := env.JS.Consumer(ctx, topology.StreamRecords, name)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := c.Fetch(5, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 5 {
			t.Fatalf("%s read %d records, want 5", name, n)
		}
	}
	// A reader (amrctl tail) holds nothing back and takes nothing away.
	oc, err := env.JS.CreateConsumer(ctx, topology.StreamRecords, topology.ReaderConsumer(topology.RecordSubject("*")))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := oc.Fetch(5, jetstream.FetchMaxWait(5*time.Second)); err != nil {
		t.Fatal(err)
	} else {
		for range b.Messages() {
		}
	}
	if n := msgs(); n != 5 {
		t.Fatalf("%d records after an ordered read, want 5", n)
	}
	read("vendor-a")
	if n := msgs(); n != 5 {
		t.Fatalf("%d records after one of two downstream consumers read them, want 5", n)
	}
	read("vendor-b")
	waitFor(t, 5*time.Second, func() bool { return msgs() == 0 })
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicasNeverLowered: on a 3-node cluster, an apply with fewer replicas than the streams
// have (a replica started without AMR_REPLICAS=3) is refused with the reason and changes nothing;
// amrctl's --allow-lower does it on purpose, after which services expecting 3 refuse to start.
func TestReplicasNeverLowered(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node JetStream cluster")
	}
	c := testenv.StartCluster(t, 3)
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := topology.Ensure(ctx, js, topology.Options{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if err := topology.Verify(ctx, js, topology.Options{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if err := topology.Verify(ctx, js, topology.Options{}); err != nil {
		t.Fatalf("a service with the default -replicas 1 verifying R3 streams: %v", err)
	}
	err = topology.Ensure(ctx, js, topology.Options{Replicas: 1})
	var le *topology.LowerError
	if !errors.As(err, &le) || le.What != "replicas" || le.Have != 3 || le.Want != 1 {
		t.Fatalf("applying R1 over R3 = %v, want a LowerError on replicas", err)
	}
	if want := "stream AMR_PLANS has 3 replicas; the topology being applied has 1: refusing to lower it"; !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal %q does not say %q", err, want)
	}
	for _, st := range topology.Stores(topology.Options{}) {
		if r := streamConfig(t, js, st.Stream).Config.Replicas; r != 3 {
			t.Errorf("%s has %d replicas after a refused apply", st.Name, r)
		}
	}
	if err := topology.Ensure(ctx, js, topology.Options{Replicas: 1, AllowLower: true}); err != nil {
		t.Fatalf("lowering on purpose: %v", err)
	}
	if err := topology.Verify(ctx, js, topology.Options{Replicas: 3}); !errors.Is(err, topology.ErrMismatch) {
		t.Fatalf("a service expecting 3 replicas of R1 streams: %v", err)
	}
}

// TestApplyWithoutJetStreamFailsAtOnce: a server without JetStream answers no request; the apply
// says so within seconds instead of waiting for replies that cannot come.
func TestApplyWithoutJetStreamFailsAtOnce(t *testing.T) {
	_, js := serve(t, testenv.NATSOptions{NoJetStream: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	err := topology.Ensure(ctx, js, topology.Options{})
	if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("apply without JetStream = %v, want no responders", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("apply without JetStream failed after %s, want seconds", took.Round(time.Second))
	}
}

// bareJetStream is an embedded JetStream without the topology (testenv.StartJetStream applies it).
func bareJetStream(t *testing.T) *testenv.JetStream {
	t.Helper()
	srv, err := testenv.StartNATS(testenv.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	env := &testenv.JetStream{Server: srv}
	env.Conn, env.JS = env.Connect(t)
	return env
}

// TestManifestsStorage: decrypted manifests are held in memory unless the operator keeps them on
// disk, and an apply never tries to move an existing store between the two (JetStream cannot).
func TestManifestsStorage(t *testing.T) {
	env := testenv.StartJetStream(t) // applied with the defaults
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	storage := func() jetstream.StorageType {
		t.Helper()
		s, err := env.JS.Stream(ctx, topology.ObjectStream(topology.ObjectManifests))
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.Storage
	}
	if got := storage(); got != jetstream.MemoryStorage {
		t.Fatalf("default: manifests in %v storage, want memory", got)
	}
	if err := env.JS.DeleteObjectStore(ctx, topology.ObjectManifests); err != nil {
		t.Fatal(err)
	}
	if err := topology.Ensure(ctx, env.JS, topology.Options{ManifestsOnDisk: true}); err != nil {
		t.Fatal(err)
	}
	if got := storage(); got != jetstream.FileStorage {
		t.Fatalf("ManifestsOnDisk: manifests in %v storage, want file", got)
	}
	// A service applying the defaults later leaves the store on disk.
	if err := topology.Ensure(ctx, env.JS, topology.Options{}); err != nil {
		t.Fatalf("Ensure over a store on disk: %v", err)
	}
	if got := storage(); got != jetstream.FileStorage {
		t.Fatalf("after a default apply: manifests in %v storage, want file (kept)", got)
	}
}

// TestManifestsAfterRestart: a standalone server does not keep a memory stream across a restart,
// so the in-memory manifests store is gone with its files. Its requests then say so
// (ManifestsGone: the parser asks for its files to be decrypted again), and the decryptor creates
// it again (RestoreManifests) before storing them.
func TestManifestsAfterRestart(t *testing.T) {
	dir := t.TempDir()
	start := func(port int) (*testenv.NATSServer, jetstream.JetStream) {
		return serve(t, testenv.NATSOptions{StoreDir: dir, Port: port})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, js := start(0)
	// Before the topology is applied, restoring is not a service's business.
	if created, err := topology.RestoreManifests(ctx, js, topology.Options{}); err != nil || created {
		t.Fatalf("RestoreManifests with nothing applied = %v, %v; want nothing done", created, err)
	}
	if err := topology.Ensure(ctx, js, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, topology.ObjectManifests)
	if err != nil {
		t.Fatal(err)
	}
	name := topology.ManifestObject("job-1", "Manifest.xml")
	if _, err := obs.PutBytes(ctx, name, []byte("<SPObjects/>")); err != nil {
		t.Fatal(err)
	}
	_, err = obs.GetInfo(ctx, "job-1/none.xml")
	if topology.ManifestsGone(ctx, js, err) {
		t.Fatalf("ManifestsGone(%v) with the store there", err)
	}
	port := s.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, js = start(int(port))
	_, err = obs.GetInfo(ctx, name) // the handle of before the restart, as a running stage holds it
	if !topology.ManifestsGone(ctx, js, err) {
		t.Fatalf("after a restart, GetInfo = %v: not taken for the store gone", err)
	}
	if created, err := topology.RestoreManifests(ctx, js, topology.Options{}); err != nil || !created {
		t.Fatalf("RestoreManifests = %v, %v; want created", created, err)
	}
	if created, err := topology.RestoreManifests(ctx, js, topology.Options{}); err != nil || created {
		t.Fatalf("RestoreManifests again = %v, %v; want nothing done", created, err)
	}
	if _, err := obs.GetInfo(ctx, name); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("a file stored before the restart: %v, want %v", err, jetstream.ErrObjectNotFound)
	}
	if _, err := obs.PutBytes(ctx, name, []byte("<SPObjects/>")); err != nil {
		t.Fatalf("storing into the store created again: %v", err)
	}
	if err := topology.Verify(ctx, js, topology.Options{}); err != nil {
		t.Fatalf("verify after a restart: %v", err)
	}
}

// serve starts an embedded server with opts and connects to it; both end with the test.
func serve(t *testing.T, opts testenv.NATSOptions) (*testenv.NATSServer, jetstream.JetStream) {
	t.Helper()
	s, err := testenv.StartNATS(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	nc, js, err := testenv.Connect(s.ClientURL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return s, js
}
