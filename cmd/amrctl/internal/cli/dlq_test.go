package cli_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestDeadLetters: `dlq list` decodes each dead letter (stage, job or spec from the payload,
// original subject, reason), filters by stage and time; `dlq show` prints the original message as
// JSON with SAS signatures redacted; `dlq replay` republishes on the original subject with a new
// message id and deletes the dead letter, refuses one that came from no pipeline subject, and
// `--all --stage` replays a stage's.
func TestDeadLetters(t *testing.T) {
	env := testenv.StartJetStream(t)
	url := env.Server.ClientURL()
	ctx := context.Background()
	const secret = "sv=2024-05-04&sr=c&sp=rw&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
	spec := &amrpipev1.JobSpec{SpecId: "spec-7", PlanId: "plan-hr", SiteUrl: "https://contoso.sharepoint.com/sites/hr",
		Urls: []string{"https://contoso.sharepoint.com/sites/hr/Docs"}}
	ready := &amrpipev1.ManifestReady{JobId: "job-9", File: "Manifest1.xml", Object: "job-9/Manifest1.xml"}
	letter := func(stage, subject string, payload proto.Message, text string, headers map[string]string, reason string) {
		dl := &amrpipev1.DeadLetter{Stage: stage, Subject: subject, Reason: reason, Headers: headers, Deliveries: 5, At: timestamppb.Now(),
			Stream: "AMR_X", StreamSequence: 3}
		if payload != nil {
			b, err := proto.Marshal(payload)
			if err != nil {
				t.Fatal(err)
			}
			dl.Payload = b
		} else {
			dl.Payload = []byte(text)
		}
		if _, err := bus.Publish(ctx, env.JS, topology.DLQSubject(stage), dl, stage+"/"+subject); err != nil {
			t.Fatal(err)
		}
	}
	letter(topology.StageSubmitter, topology.SpecSubject("plan-hr"), spec, "", map[string]string{bus.HeaderType: "amrpipe.v1.JobSpec", "Nats-Msg-Id": "spec-7"},
		"SharePoint refused the create call: https://acct.blob.core.windows.net/c?"+secret)
	letter(topology.StageParser, topology.ManifestSubject("job-9"), ready, "", nil, "manifest does not parse")
	letter(topology.StageRelay, "azure-queue/amr-reports", nil, "not json", map[string]string{"Azure-Queue": "amr-reports"}, "undecodable queue message")

	type row struct {
		Seq     uint64 `json:"seq"`
		Stage   string `json:"stage"`
		Subject string `json:"subject"`
		JobID   string `json:"job_id"`
		SpecID  string `json:"spec_id"`
		PlanID  string `json:"plan_id"`
		Type    string `json:"type"`
		Reason  string `json:"reason"`
	}
	list := func(args ...string) []row {
		t.Helper()
		out, _, err := amrctlIO(t, url, append([]string{"dlq", "list", "-o", "json"}, args...)...)
		if err != nil {
			t.Fatalf("dlq list %v: %v", args, err)
		}
		var rows []row
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("dlq list %v: %v\n%s", args, err, out)
		}
		return rows
	}
	rows := list()
	if len(rows) != 3 {
		t.Fatalf("dlq list: %d rows, want 3: %+v", len(rows), rows)
	}
	if r := rows[0]; r.Stage != "submitter" || r.SpecID != "spec-7" || r.PlanID != "plan-hr" || r.Type != "amrpipe.v1.JobSpec" || r.Subject != "amr.specs.plan-hr" ||
		strings.Contains(r.Reason, "c2VjcmV0") {
		t.Errorf("submitter's dead letter listed as %+v", r)
	}
	if r := rows[1]; r.JobID != "job-9" || r.Type != "amrpipe.v1.ManifestReady" {
		t.Errorf("parser's dead letter (no type header) listed as %+v", r)
	}
	if got := list("--stage", "parser"); len(got) != 1 || got[0].Seq != rows[1].Seq {
		t.Errorf("--stage parser: %+v", got)
	}
	if got := list("--since", "1h"); len(got) != 3 {
		t.Errorf("--since 1h: %d rows, want 3", len(got))
	}
	if got := list("--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(got) != 0 {
		t.Errorf("--since an hour ahead: %d rows, want 0", len(got))
	}
	if out, _, err := amrctlIO(t, url, "dlq", "list"); err != nil || !strings.Contains(out, "spec-7") || !strings.Contains(out, "REDACTED") {
		t.Errorf("dlq list (table): %v\n%s", err, out)
	}

	seq := strconv.FormatUint(rows[0].Seq, 10)
	out, _, err := amrctlIO(t, url, "dlq", "show", seq, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		Payload struct {
			SpecID string   `json:"spec_id"`
			URLs   []string `json:"urls"`
		} `json:"payload"`
		Headers map[string]string `json:"headers"`
		Reason  string            `json:"reason"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Payload.SpecID != "spec-7" || len(shown.Payload.URLs) != 1 || strings.Contains(out, "c2VjcmV0") {
		t.Fatalf("dlq show -o json: %v\n%s", err, out)
	}
	if _, _, err := amrctlIO(t, url, "dlq", "show", "999"); cli.ExitCode(err) != cli.ExitNotFound {
		t.Errorf("dlq show 999: %v (exit %d), want exit 3", err, cli.ExitCode(err))
	}
	if _, _, err := amrctlIO(t, url, "dlq", "show", "x"); cli.ExitCode(err) != cli.ExitUsage {
		t.Errorf("dlq show x: %v (exit %d), want exit 2", err, cli.ExitCode(err))
	}

	out, _, err = amrctlIO(t, url, "dlq", "replay", seq, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var replayed []struct {
		Seq      uint64 `json:"seq"`
		Subject  string `json:"subject"`
		Stream   string `json:"stream"`
		Sequence uint64 `json:"sequence"`
	}
	if err := json.Unmarshal([]byte(out), &replayed); err != nil || len(replayed) != 1 || replayed[0].Stream != topology.StreamSpecs {
		t.Fatalf("dlq replay -o json: %v\n%s", err, out)
	}
	specs, err := env.JS.Stream(ctx, topology.StreamSpecs)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := specs.GetMsg(ctx, replayed[0].Sequence)
	if err != nil {
		t.Fatal(err)
	}
	got := &amrpipev1.JobSpec{}
	if err := proto.Unmarshal(msg.Data, got); err != nil || !proto.Equal(got, spec) || msg.Subject != "amr.specs.plan-hr" ||
		msg.Header.Get("Nats-Msg-Id") != "replay/AMR_DLQ/"+seq || msg.Header.Get(bus.HeaderType) != "amrpipe.v1.JobSpec" {
		t.Fatalf("replayed message on %s, headers %v, payload %v (%v)", msg.Subject, msg.Header, got, err)
	}
	if _, _, err := amrctlIO(t, url, "dlq", "show", seq); cli.ExitCode(err) != cli.ExitNotFound {
		t.Errorf("dlq show of a replayed dead letter: %v, want it deleted (exit 3)", err)
	}
	relaySeq := strconv.FormatUint(rows[2].Seq, 10)
	if _, _, err := amrctlIO(t, url, "dlq", "replay", relaySeq); cli.ExitCode(err) != cli.ExitFailed || !strings.Contains(err.Error(), "not replayable") {
		t.Errorf("replay of the relay's queue message: %v (exit %d), want refused (exit 1)", err, cli.ExitCode(err))
	}
	if _, _, err := amrctlIO(t, url, "dlq", "replay", "--all"); cli.ExitCode(err) != cli.ExitUsage {
		t.Errorf("replay --all without --stage: %v, want a usage error", err)
	}
	if _, _, err := amrctlIO(t, url, "dlq", "replay", "--all", "--stage", "parser"); err != nil {
		t.Fatal(err)
	}
	if left := list(); len(left) != 1 || left[0].Stage != topology.StageRelay {
		t.Errorf("after the replays: %+v, want only the relay's dead letter", left)
	}
}
