package parser

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func TestJobTokens(t *testing.T) {
	planned := time.Date(2026, 11, 1, 7, 0, 0, 0, time.UTC)
	submitted := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	now := timestamppb.New(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC))
	read := func(list, token string) *amrpipev1.ListToken {
		return &amrpipev1.ListToken{ListId: list, Token: token, Read: timestamppb.New(planned)}
	}
	tests := []struct {
		name string
		rec  *amrpipev1.JobRecord
		want []*amrpipev1.StoredToken
	}{
		{name: "a list root's job: the create call's token",
			rec: &amrpipev1.JobRecord{ChangeToken: "call", Submitted: timestamppb.New(submitted),
				Spec: &amrpipev1.JobSpec{TokenListId: "A", ListTokens: []*amrpipev1.ListToken{read("{a}", "rest-a")}}},
			want: []*amrpipev1.StoredToken{{ListId: "A", Token: "call", Issued: timestamppb.New(submitted)}}},
		{name: "a multi-URL job over two lists: each list's token read while planning",
			rec: &amrpipev1.JobRecord{ChangeToken: "call", Submitted: timestamppb.New(submitted),
				Spec: &amrpipev1.JobSpec{ListTokens: []*amrpipev1.ListToken{read("A", "rest-a"), read("B", "rest-b")}}},
			want: []*amrpipev1.StoredToken{{ListId: "A", Token: "rest-a", Issued: timestamppb.New(planned)},
				{ListId: "B", Token: "rest-b", Issued: timestamppb.New(planned)}}},
		{name: "a list root's job found by reconciliation (no create answer): the planning's token",
			rec:  &amrpipev1.JobRecord{Spec: &amrpipev1.JobSpec{TokenListId: "A", ListTokens: []*amrpipev1.ListToken{read("A", "rest-a")}}},
			want: []*amrpipev1.StoredToken{{ListId: "A", Token: "rest-a", Issued: timestamppb.New(planned)}}},
		{name: "a token without its read time is not used",
			rec: &amrpipev1.JobRecord{Spec: &amrpipev1.JobSpec{ListTokens: []*amrpipev1.ListToken{{ListId: "A", Token: "rest-a"}}}}},
		{name: "folders only: nothing",
			rec: &amrpipev1.JobRecord{ChangeToken: "call", Spec: &amrpipev1.JobSpec{ListIds: []string{"A"}}}},
		{name: "an incremental job over folder targets: the call's token for each folder, never the list's",
			rec: &amrpipev1.JobRecord{ChangeToken: "call", Submitted: timestamppb.New(submitted),
				Spec: &amrpipev1.JobSpec{TokenListId: "A", Scope: []string{"https://x/A/f1", "https://x/A/f2"}}},
			want: []*amrpipev1.StoredToken{{ListId: "A", Token: "call", Issued: timestamppb.New(submitted), Scope: "https://x/A/f1"},
				{ListId: "A", Token: "call", Issued: timestamppb.New(submitted), Scope: "https://x/A/f2"}}},
		{name: "a folder target read in full: its list's token for the folder",
			rec: &amrpipev1.JobRecord{ChangeToken: "call", Spec: &amrpipev1.JobSpec{ListTokens: []*amrpipev1.ListToken{
				{ListId: "A", Token: "rest-a", Read: timestamppb.New(planned), Scope: "https://x/A/f1"}}}},
			want: []*amrpipev1.StoredToken{{ListId: "A", Token: "rest-a", Issued: timestamppb.New(planned), Scope: "https://x/A/f1"}}},
		{name: "no submission time: the start",
			rec:  &amrpipev1.JobRecord{ChangeToken: "call", Started: now, Spec: &amrpipev1.JobSpec{TokenListId: "A"}},
			want: []*amrpipev1.StoredToken{{ListId: "A", Token: "call", Issued: now}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := jobTokens(tt.rec, now)
			if len(got) != len(tt.want) {
				t.Fatalf("tokens %v, want %v", got, tt.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Errorf("token %d: %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestMultiListJobCommitsEveryListsToken: a multi-URL job over the roots of two lists commits the
// token of each (read while planning) when it succeeds, and none when it fails.
func TestMultiListJobCommitsEveryListsToken(t *testing.T) {
	const listA, listB = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
	planned := timestamppb.New(time.Date(2026, 11, 1, 7, 0, 0, 0, time.UTC))
	tests := []struct {
		name   string
		failed bool
	}{{name: "done"}, {name: "failed", failed: true}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.startParser(Config{})
			spec := allSpec()
			spec.Multi, spec.ListIds = true, []string{listA, listB}
			spec.ListTokens = []*amrpipev1.ListToken{{ListId: listA, Token: "token-a", Read: planned}, {ListId: listB, Token: "token-b", Read: planned}}
			jobID := []string{"11111111-2222-4333-8444-555555555555", "66666666-7777-4888-8999-aaaaaaaaaaaa"}[i]
			h.putJob(jobID, spec, "job-token", "Manifest.xml")
			if tt.failed {
				if _, err := h.store.Fire(context.Background(), jobID, jobstore.Failed("SharePoint failed the job", true)); err != nil {
					t.Fatal(err)
				}
			}
			h.ready(h.putFile(jobID, "Manifest.xml", generated(t, 3, 8<<10)), jobID+"/Manifest.xml")
			h.end(jobID, topology.EventJobEnd, "end-"+jobID)
			want := amrpipev1.JobState_JOB_STATE_DONE
			if tt.failed {
				want = amrpipev1.JobState_JOB_STATE_FAILED
			}
			h.settled(jobID, inState(want))
			if tt.failed {
				for _, l := range []string{listA, listB} {
					if tok, _, err := h.store.Token(context.Background(), l); !errors.Is(err, jobstore.ErrNotFound) {
						t.Errorf("failed job committed token %v for %s (%v)", tok, l, err)
					}
				}
				return
			}
			for _, l := range []struct{ id, token string }{{listA, "token-a"}, {listB, "token-b"}} {
				tok, _, err := h.store.Token(context.Background(), l.id)
				if err != nil || tok.GetToken() != l.token || tok.GetJobId() != jobID || !tok.GetIssued().AsTime().Equal(planned.AsTime()) {
					t.Errorf("list %s: token %v (%v), want %s of job %s issued %v", l.id, tok, err, l.token, jobID, planned.AsTime())
				}
			}
		})
	}
}
