package parser

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

const listID = "{0F9E8D7C-6B5A-4938-8271-605F4E3D2C1B}"

// job is a package of files to run through the parser.
type job struct {
	id    string
	spec  *amrpipev1.JobSpec
	token string
	files map[string][]byte
	order []string
}

func newJob(id string, spec *amrpipev1.JobSpec, token string) *job {
	return &job{id: id, spec: spec, token: token, files: map[string][]byte{}}
}

func (j *job) add(name string, data []byte) *job {
	j.files[name] = data
	j.order = append(j.order, name)
	return j
}

// run records the job, stores and announces its files and relays JobEnd.
func (h *harness) run(j *job) {
	h.t.Helper()
	h.putJob(j.id, j.spec, j.token, j.order...)
	for _, f := range j.order {
		h.ready(h.putFile(j.id, f, j.files[f]), j.id+"/"+f)
	}
	h.end(j.id, topology.EventJobEnd, "end-"+j.id)
}

// contentJob is an EMIT_ALL job on the library of the generated manifests, with two manifest
// parts and the genuine UserGroup.xml of the samples.
func contentJob(h *harness, id string) *job {
	spec := allSpec()
	spec.TokenListId, spec.ListIds, spec.PlanId = listID, []string{listID}, "plan-1"
	return newJob(id, spec, "1;3;0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b;638650000000000000;1234").
		add("Manifest.xml", generated(h.t, 11, 120<<10)).
		add("Manifest1.xml", generated(h.t, 12, 80<<10)).
		add("UserGroup.xml", h.fixture("UserGroup.xml"))
}

// checkRecords checks that the records of every file are on the subject once, in order, as
// pkg/sharepoint/manifest yields them, in batches with unique ids, each file ending in one last batch.
func (h *harness) checkRecords(j *job) []batch {
	h.t.Helper()
	bs := h.batches(j.id)
	ids := map[string]bool{}
	last := map[string]int{}
	for _, b := range bs {
		if ids[b.id] {
			h.t.Errorf("batch id %s twice on the subject", b.id)
		}
		ids[b.id] = true
		if _, ok := parseBatchID(b.id, j.id+"/"+b.GetSourceFile()+"/"); !ok {
			h.t.Errorf("batch %d of %s has id %s", b.GetBatch(), b.GetSourceFile(), b.id)
		}
		if b.GetLast() {
			last[b.GetSourceFile()]++
		}
	}
	for _, f := range j.order {
		if last[f] != 1 {
			h.t.Errorf("%s: %d batches with last=true, want 1", f, last[f])
		}
		if got, want := records(bs, f), parseAll(h.t, j.files[f], j.id, f); !equalRecords(got, want) {
			h.t.Errorf("%s: %d records on the subject, pkg/sharepoint/manifest yields %d (or they differ)", f, len(got), len(want))
		}
	}
	return bs
}

// wantCounts counts what pkg/sharepoint/manifest yields for the job's files, by object type.
func (h *harness) wantCounts(j *job) (map[string]int64, int64) {
	counts, total := map[string]int64{}, int64(0)
	for _, f := range j.order {
		for _, r := range parseAll(h.t, j.files[f], j.id, f) {
			counts[r.GetObjectType()]++
			total++
		}
	}
	return counts, total
}

func TestJob(t *testing.T) {
	h := newHarness(t)
	h.startParser(Config{BatchSize: 16})
	j := contentJob(h, "3f2a1b0c-1111-4222-8333-944455556666")
	// What the relay keeps to follow the job, which the finished job no longer needs.
	cursors, seen := h.env.KV(t, topology.BucketCursors), h.env.KV(t, topology.BucketSeen)
	if _, err := cursors.Put(context.Background(), j.id, []byte("next-token")); err != nil {
		t.Fatal(err)
	}
	if _, err := seen.Create(context.Background(), j.id+".event-1", nil); err != nil {
		t.Fatal(err)
	}
	h.run(j)
	rec := h.settled(j.id, inState(amrpipev1.JobState_JOB_STATE_DONE))

	for _, kv := range []jetstream.KeyValue{cursors, seen} {
		if keys, err := kv.ListKeysFiltered(context.Background(), j.id+".>", j.id); err != nil {
			t.Fatal(err)
		} else {
			for k := range keys.Keys() {
				t.Errorf("%s still holds %s after the job was DONE (jobstore.Forget)", kv.Bucket(), k)
			}
		}
	}
	h.checkRecords(j)
	h.leftNothing(j)
	counts, total := h.wantCounts(j)
	sums := h.summaries(j.id)
	if len(sums) != 1 {
		t.Fatalf("%d summaries, want 1", len(sums))
	}
	s := sums[0]
	if s.GetFailed() || s.GetRecords() != total || !maps.Equal(s.GetCounts(), counts) || s.GetChangeToken() != j.token ||
		s.GetSpecId() != "spec-1" || s.GetPlanId() != "plan-1" || !slices.Equal(s.GetListIds(), []string{listID}) {
		t.Errorf("summary %v, want %d records %v, token %q", s, total, counts, j.token)
	}
	if got := slices.Sorted(slices.Values(s.GetFiles())); !slices.Equal(got, []string{"Manifest.xml", "Manifest1.xml", "UserGroup.xml"}) {
		t.Errorf("summary files %v", got)
	}
	if rec.GetRecords() != total || len(rec.GetFilesParsed()) != 3 {
		t.Errorf("job record: %d records, files %v", rec.GetRecords(), rec.GetFilesParsed())
	}

	tok, _, err := h.store.Token(context.Background(), listID)
	if err != nil {
		t.Fatalf("token not committed: %v", err)
	}
	if tok.GetToken() != j.token || tok.GetJobId() != j.id || !tok.GetIssued().AsTime().Equal(rec.GetSubmitted().AsTime()) {
		t.Errorf("stored token %v, want %q of job %s issued %v", tok, j.token, j.id, rec.GetSubmitted().AsTime())
	}
	// The token is committed after the summary: its entry is not older than the summary.
	entry, err := h.env.KV(t, topology.BucketTokens).Get(context.Background(), jobstore.TokenKey(listID))
	if err != nil {
		t.Fatal(err)
	}
	if at := h.msgs(topology.StreamDone, topology.DoneSubject(j.id))[0].Time; entry.Created().Before(at) {
		t.Errorf("token stored at %v, before the summary at %v", entry.Created(), at)
	}
}

// TestRedelivery delivers every input twice, the second time under other message ids (as after
// the duplicate window), to two replicas on two connections at once: the records, the summary
// and the counts must be those of one delivery.
func TestRedelivery(t *testing.T) {
	h := newHarness(t)
	h.startParser(Config{BatchSize: 16})
	h.startParser(Config{BatchSize: 16})
	j := contentJob(h, "7b6a5948-3726-4154-8332-211009988776")
	h.putJob(j.id, j.spec, j.token, j.order...)
	for _, f := range j.order {
		m := h.putFile(j.id, f, j.files[f])
		h.ready(m, j.id+"/"+f)
		h.ready(m, j.id+"/"+f+"/again")
	}
	h.end(j.id, topology.EventJobEnd, "end-1")
	h.end(j.id, topology.EventJobEnd, "end-1-again")
	rec := h.settled(j.id, inState(amrpipev1.JobState_JOB_STATE_DONE))
	bs := h.checkRecords(j)

	// Later still: the same file and the same end event once more.
	h.ready(h.putFile(j.id, "Manifest.xml", j.files["Manifest.xml"]), j.id+"/Manifest.xml/late")
	h.end(j.id, topology.EventJobEnd, "end-1-late")
	after := h.settled(j.id, inState(amrpipev1.JobState_JOB_STATE_DONE))

	if n := len(h.batches(j.id)); n != len(bs) {
		t.Errorf("%d batches after the late redelivery, %d before", n, len(bs))
	}
	if n := len(h.summaries(j.id)); n != 1 {
		t.Errorf("%d summaries, want 1", n)
	}
	counts, total := h.wantCounts(j)
	for _, r := range []*amrpipev1.JobRecord{rec, after} {
		if r.GetRecords() != total || !maps.Equal(r.GetCounts(), counts) || len(r.GetFilesParsed()) != len(j.order) {
			t.Errorf("job record counts %d %v, files %v; want %d %v", r.GetRecords(), r.GetCounts(), r.GetFilesParsed(), total, counts)
		}
	}
	if dl := h.deadLetters(); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
}

// TestCrashAfterSummary resumes a completion that stopped right after the summary: the end
// event's redelivery publishes no second summary, and commits the token and the state.
func TestCrashAfterSummary(t *testing.T) {
	h := newHarness(t)
	jobID := "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"
	spec := allSpec()
	spec.TokenListId = listID
	h.putJob(jobID, spec, "token-1", "Manifest.xml")
	rec, err := h.store.Fire(context.Background(), jobID, jobstore.FileParsed(jobstore.ParsedFile{File: "Manifest.xml", Records: 5}),
		jobstore.EndSeen(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), nil), jobstore.EndConfirmed())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Publish(context.Background(), h.env.JS, topology.DoneSubject(jobID), summary(rec, false), jobID+"-earlier"); err != nil {
		t.Fatal(err)
	}
	h.startParser(Config{})
	h.end(jobID, topology.EventJobEnd, "end-again")
	h.settled(jobID, inState(amrpipev1.JobState_JOB_STATE_DONE))
	if n := len(h.summaries(jobID)); n != 1 {
		t.Errorf("%d summaries, want 1", n)
	}
	if tok, _, err := h.store.Token(context.Background(), listID); err != nil || tok.GetToken() != "token-1" {
		t.Errorf("token %v (%v), want token-1", tok, err)
	}
}

func published(bs []batch) (types map[string]int, ids []string) {
	types = map[string]int{}
	for _, b := range bs {
		for _, r := range b.GetRecords() {
			types[r.GetObjectType()]++
			ids = append(ids, r.GetObjectId())
		}
	}
	return types, ids
}

func TestEmitPolicies(t *testing.T) {
	h := newHarness(t)
	h.startParser(Config{BatchSize: 4})
	ug := h.fixture("UserGroup.xml")
	users, groups := strings.Count(string(ug), "<User "), strings.Count(string(ug), "<Group ")

	t.Run("probe", func(t *testing.T) {
		j := newJob("11111111-aaaa-4bbb-8ccc-000000000001", probeSpec(), "").
			add("Manifest.xml", h.fixture("probe/Manifest.xml")).add("Manifest1.xml", h.fixture("probe/Manifest1.xml"))
		h.run(j)
		h.settled(j.id, inState(amrpipev1.JobState_JOB_STATE_DONE))
		types, ids := published(h.batches(j.id))
		want := map[string]int{"SPDocumentLibrary": 1, "SPFile": 2, "SPListItem": 2, "RoleAssignment": 2}
		if !maps.Equal(types, want) {
			t.Errorf("published %v, want %v", types, want)
		}
		for _, id := range ids {
			if strings.HasPrefix(id, "f0000000") || strings.HasSuffix(id, "2019") || strings.HasSuffix(id, "2020") {
				t.Errorf("subfolder object %s published", id)
			}
		}
		prs := h.probeResults()
		if len(prs) != 1 {
			t.Fatalf("%d probe results, want 1", len(prs))
		}
		got := map[string]string{}
		for _, f := range prs[0].GetSubfolders() {
			got[f.GetUrl()] = fmt.Sprintf("%d/%d/%t %s %s", f.GetFiles(), f.GetFolders(), f.GetTotalsUnknown(), f.GetWebUrl(), f.GetListId())
		}
		lid := probeSpec().GetListIds()[0]
		wantFolders := map[string]string{
			web + "/Docs/2019": "1200000/0/false " + web + " " + lid,
			web + "/Docs/2020": "900/0/false " + web + " " + lid,
			web + "/Docs/Misc": "-1/-1/true " + web + " " + lid,
		}
		if !maps.Equal(got, wantFolders) || prs[0].GetDirectFiles() != 2 || prs[0].GetJobId() != j.id || prs[0].GetSpec().GetSpecId() != "probe-spec" {
			t.Errorf("probe result %v, want subfolders %v and 2 direct files", prs[0], wantFolders)
		}
	})
	t.Run("security only", func(t *testing.T) {
		spec := &amrpipev1.JobSpec{WebUrl: web, Urls: []string{web + "/Docs"}, Emit: amrpipev1.Emit_EMIT_SECURITY_ONLY, EmitPrincipals: true,
			Options: &amrpipev1.ReadOptions{IncludeSecurity: true, IncludeDirectDescendantsOnly: true}}
		j := newJob("11111111-aaaa-4bbb-8ccc-000000000002", spec, "").
			add("Manifest.xml", h.fixture("security/Manifest.xml")).add("UserGroup.xml", ug)
		h.run(j)
		h.settled(j.id, inState(amrpipev1.JobState_JOB_STATE_DONE))
		types, _ := published(h.batches(j.id))
		if want := map[string]int{"User": users, "Group": groups, "Role": 2}; !maps.Equal(types, want) {
			t.Errorf("published %v, want %v", types, want)
		}
	})
	t.Run("principals elsewhere", func(t *testing.T) {
		spec := &amrpipev1.JobSpec{WebUrl: web, Urls: []string{web + "/Docs"}, Emit: amrpipev1.Emit_EMIT_ALL}
		j := newJob("11111111-aaaa-4bbb-8ccc-000000000003", spec, "").
			add("Manifest.xml", h.fixture("security/Manifest.xml")).add("UserGroup.xml", ug)
		h.run(j)
		h.settled(j.id, inState(amrpipev1.JobState_JOB_STATE_DONE))
		bs := h.batches(j.id)
		types, _ := published(bs)
		if want := map[string]int{"SPDocumentLibrary": 1, "SPFile": 1}; !maps.Equal(types, want) {
			t.Errorf("published %v, want %v", types, want)
		}
		var ugBatches []batch
		for _, b := range bs {
			if b.GetSourceFile() == "UserGroup.xml" {
				ugBatches = append(ugBatches, b)
			}
		}
		if len(ugBatches) != 1 || !ugBatches[0].GetLast() || len(ugBatches[0].GetRecords()) != 0 {
			t.Errorf("UserGroup.xml batches %v, want one empty last batch", ugBatches)
		}
		if s := h.summaries(j.id); len(s) != 1 || s[0].GetRecords() != 2 {
			t.Errorf("summaries %v, want one with 2 records", s)
		}
	})
}

// TestCompletionWaitsForTheConfirmedEnd: a multi-URL job may send a JobEnd per URL, so a JobEnd is
// not the end until the progress API shows nothing after it. Seen but not confirmed, the job
// publishes no summary and commits no token, however many files are parsed; confirmed, it
// completes.
func TestCompletionWaitsForTheConfirmedEnd(t *testing.T) {
	h := newHarness(t)
	h.startParser(Config{BatchSize: 16})
	j := contentJob(h, "4a5b6c7d-1111-4222-8333-944455556666")
	h.putJob(j.id, j.spec, j.token, j.order...)
	for _, f := range j.order {
		h.ready(h.putFile(j.id, f, j.files[f]), j.id+"/"+f)
	}
	h.record(j.id, jobstore.EndSeen(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), nil))
	h.relayEvent(j.id, topology.EventJobEnd, "first-url-end")
	h.settled(j.id, func(r *amrpipev1.JobRecord) bool { return len(r.GetFilesParsed()) == len(j.order) })
	time.Sleep(300 * time.Millisecond) // the end event handled meanwhile
	if rec, _, err := h.store.Job(context.Background(), j.id); err != nil || rec.GetState() != amrpipev1.JobState_JOB_STATE_ENDED {
		t.Fatalf("record %v, %v: want it ENDED, not completed, before the end is confirmed", rec, err)
	}
	if n := len(h.msgs(topology.StreamDone, topology.DoneSubject(j.id))); n != 0 {
		t.Fatalf("%d summaries before the end was confirmed", n)
	}
	if _, _, err := h.store.Token(context.Background(), listID); err == nil {
		t.Fatal("a change token was committed before the end was confirmed")
	}
	h.record(j.id, jobstore.EndConfirmed())
	h.relayEvent(j.id, topology.EventJobChanged, "job-changed/"+j.id+"/end-confirmed")
	h.settled(j.id, inState(amrpipev1.JobState_JOB_STATE_DONE))
	if n := len(h.msgs(topology.StreamDone, topology.DoneSubject(j.id))); n != 1 {
		t.Fatalf("%d summaries after the end was confirmed, want 1", n)
	}
}
