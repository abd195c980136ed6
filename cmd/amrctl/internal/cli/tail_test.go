package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestTailEndsAtTheStreamsEndAndPrintsEachRecordOnce: `amrctl tail` stops at the end of the
// stream, prints a record delivered twice (another framing of a re-parse) once, filters by job,
// and takes nothing from the declared consumer; --since starts at a time (on the server's side),
// --limit stops after so many records, -o table prints a compact table.
func TestTailEndsAtTheStreamsEndAndPrintsEachRecordOnce(t *testing.T) {
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	batch := func(job string, from, to uint64, id string) {
		b := &amrpipev1.RecordBatch{JobId: job, SourceFile: "Manifest.xml"}
		for seq := from; seq < to; seq++ {
			b.Records = append(b.Records, &amrpipev1.Record{JobId: job, SourceFile: "Manifest.xml", Sequence: seq, ObjectId: "o", ObjectType: "SPFolder"})
		}
		if _, err := bus.Publish(ctx, env.JS, topology.RecordSubject(job), b, id); err != nil {
			t.Fatal(err)
		}
	}
	batch("job-a", 0, 3, "job-a/Manifest.xml/v1.n3/0-3")
	batch("job-a", 0, 4, "job-a/Manifest.xml/v1.n4/0-4") // three repeats, one new
	batch("job-b", 0, 2, "job-b/Manifest.xml/v1.n2/0-2")

	out, err := amrctl(t, env.Server.ClientURL(), "tail", "-o", "json")
	if err != nil {
		t.Fatalf("tail: %v\n%s", err, out)
	}
	if n := strings.Count(out, "\n"); n != 6 {
		t.Fatalf("tail printed %d lines, want 6 (4 of job-a, 2 of job-b):\n%s", n, out)
	}
	var rec amrpipev1.Record
	if err := client.UnmarshalJSON([]byte(strings.SplitN(out, "\n", 2)[0]), &rec); err != nil || rec.GetJobId() != "job-a" {
		t.Fatalf("first line %q: %v", strings.SplitN(out, "\n", 2)[0], err)
	}
	out, err = amrctl(t, env.Server.ClientURL(), "tail", "-o", "json", "--job", "job-b")
	if err != nil || strings.Count(out, "\n") != 2 || strings.Contains(out, "job-a") {
		t.Fatalf("tail --job job-b: %v\n%s", err, out)
	}
	s, err := env.JS.Stream(ctx, topology.StreamRecords)
	if err != nil {
		t.Fatal(err)
	}
	// --since from job-b's batch's time: JetStream starts there, on the server.
	third, err := s.GetMsg(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	out, err = amrctl(t, env.Server.ClientURL(), "tail", "-o", "json", "--since", third.Time.UTC().Format(time.RFC3339Nano))
	if err != nil || strings.Count(out, "\n") != 2 || strings.Contains(out, "job-a") {
		t.Fatalf("tail --since the third batch: %v\n%s", err, out)
	}
	out, err = amrctl(t, env.Server.ClientURL(), "tail", "-o", "json", "--limit", "2")
	if err != nil || strings.Count(out, "\n") != 2 {
		t.Fatalf("tail --limit 2: %v\n%s", err, out)
	}
	out, err = amrctl(t, env.Server.ClientURL(), "tail", "--job", "job-a")
	if err != nil || !strings.HasPrefix(out, "PATH") || strings.Count(out, "SPFolder") != 4 {
		t.Fatalf("tail -o table: %v\n%s", err, out)
	}
	if _, err := amrctl(t, env.Server.ClientURL(), "tail", "--since", "yesterday"); cli.ExitCode(err) != cli.ExitUsage {
		t.Fatalf("tail --since yesterday: %v, want a usage error", err)
	}
	s, err = env.JS.Stream(ctx, topology.StreamRecords)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("AMR_RECORDS holds %d batches after tail, want 3: tail must take nothing from the declared consumer", n)
	}
}
