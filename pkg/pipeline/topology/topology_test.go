package topology_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// docTables reads the tables of docs/pipeline.md, keyed by the first header cell.
func docTables(t *testing.T) map[string][][]string {
	t.Helper()
	data, err := os.ReadFile("../../../docs/pipeline.md")
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][][]string{}
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
		case strings.HasPrefix(cells[0], "---"):
		default:
			tables[current] = append(tables[current], cells)
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
	matchRows(t, "streams", tables["stream"], streams, func(name string, r []string, cfg jetstream.StreamConfig) {
		if got := names(r[1]); !slices.Equal(got, cfg.Subjects) {
			t.Errorf("%s subjects: doc %v, code %v", name, got, cfg.Subjects)
		}
		wantRetention := map[string]jetstream.RetentionPolicy{"work queue": jetstream.WorkQueuePolicy, "limits": jetstream.LimitsPolicy}[r[2]]
		if cfg.Retention != wantRetention {
			t.Errorf("%s retention: doc %q, code %v", name, r[2], cfg.Retention)
		}
		if d := docDuration(t, r[4]); d != cfg.MaxAge {
			t.Errorf("%s max age: doc %s, code %s", name, r[4], cfg.MaxAge)
		}
		if d := docDuration(t, r[5]); d != cfg.Duplicates {
			t.Errorf("%s dup window: doc %s, code %s", name, r[5], cfg.Duplicates)
		}
	})

	consumers := map[string]topology.ConsumerSpec{}
	for _, c := range topology.Consumers() {
		consumers[c.Config.Durable] = c
	}
	matchRows(t, "consumers", tables["consumer"], consumers, func(name string, r []string, c topology.ConsumerSpec) {
		if s := names(r[1])[0]; s != c.Stream {
			t.Errorf("%s stream: doc %s, code %s", name, s, c.Stream)
		}
		filters := c.Config.FilterSubjects
		if c.Config.FilterSubject != "" {
			filters = []string{c.Config.FilterSubject}
		}
		if got := names(r[2]); !slices.Equal(got, filters) {
			t.Errorf("%s filter: doc %v, code %v", name, got, filters)
		}
		if c.Config.MaxDeliver != -1 || c.Config.AckWait != topology.AckWait || c.Config.AckPolicy != jetstream.AckExplicitPolicy {
			t.Errorf("%s: MaxDeliver %d AckWait %s ack %v, doc says unlimited, 2 min, explicit", name, c.Config.MaxDeliver, c.Config.AckWait, c.Config.AckPolicy)
		}
	})

	ttl := map[string]time.Duration{}
	for _, b := range topology.Buckets(o) {
		ttl[b.Bucket] = b.TTL
	}
	for _, s := range topology.ObjectStores(o) {
		ttl[s.Bucket] = s.TTL
	}
	matchRows(t, "buckets and object stores", tables["bucket"], ttl, func(name string, r []string, want time.Duration) {
		if d := docDuration(t, r[3]); d != want {
			t.Errorf("%s TTL: doc %s, code %s", name, r[3], want)
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
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending != want {
			t.Errorf("consumer %s has %d pending, want %d", name, info.NumPending, want)
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
