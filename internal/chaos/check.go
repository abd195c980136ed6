package chaos

// This file compares everything downstream with the ground truth once the pipeline is idle, and
// checks that every job ended truthfully.

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// check runs every check and fills the report; it returns an error only when it could not look.
func (r *Runner) check(ctx context.Context) error {
	jobs, err := r.stack.Store.Jobs(ctx)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	byID := map[string]*amrpipev1.JobRecord{}
	for _, j := range jobs {
		byID[j.GetJobId()] = j
	}
	r.checkJobs(jobs)
	nc, js, err := r.stack.Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	got, err := testenv.Records(ctx, js)
	if err != nil {
		return err
	}
	if err := r.checkContent(ctx, jobs, got); err != nil {
		return err
	}
	if err := r.checkTokens(ctx, js, byID, jobs); err != nil {
		return err
	}
	if err := r.checkDeadLetters(ctx, js, jobs); err != nil {
		return err
	}
	if err := r.checkSummaries(ctx, js, jobs); err != nil {
		return err
	}
	r.checkProcesses()
	return nil
}

// checkJobs: every job is final; a failed one has a reason; the victims failed, because their
// blobs were throttled past the budget, and no other job failed (the storm, the kills and the
// nats-server restart must all be survived).
func (r *Runner) checkJobs(jobs []*amrpipev1.JobRecord) {
	st := r.stack.Proxy.Stats()
	r.rep.Persistent503, r.rep.PersistentBlobs, r.rep.Stormed, r.rep.Undecided = st.Persistent, st.Blobs, st.Stormed, st.Undecided
	r.rep.Jobs = len(jobs)
	victimJobs := 0
	for _, j := range jobs {
		id, urls := j.GetJobId(), describe(j.GetSpec())
		victim := r.victimSpec(j.GetSpec())
		if victim {
			r.victimJob[id] = true
			victimJobs++
			r.rep.VictimJobs = append(r.rep.VictimJobs, id+" ("+urls+")")
		}
		switch j.GetState() {
		case amrpipev1.JobState_JOB_STATE_DONE:
			r.rep.Done++
			if victim {
				r.violate("job %s (%s) ended DONE although its blobs always answered 503", id, urls)
			}
		case amrpipev1.JobState_JOB_STATE_FAILED:
			r.rep.Failed++
			reason := j.GetLastError()
			if reason == "" && len(j.GetFilesFailed()) > 0 {
				reason = "failed files " + strings.Join(j.GetFilesFailed(), ", ")
			}
			r.rep.FailedJobs = append(r.rep.FailedJobs, fmt.Sprintf("%s (%s): %s", id, urls, shortReason(reason)))
			switch {
			case reason == "":
				r.violate("job %s (%s) FAILED without a reason", id, urls)
			case !victim:
				r.violate("job %s (%s) FAILED, but nothing was meant to fail it: %s", id, urls, oneLine(reason, 600))
			case !strings.Contains(reason, "throttled"):
				r.violate("victim job %s (%s) FAILED for another reason than its throttled blobs: %s", id, urls, oneLine(reason, 400))
			}
		default:
			r.violate("job %s (%s) left %s: %s", id, urls, jobstore.StateName(j.GetState()), jobstore.Blocker(j))
		}
	}
	r.checkOneJobPerSpec(jobs)
	switch {
	case len(r.victims) > 0 && victimJobs == 0:
		r.violate("no job read the victim URLs %v: nothing failed for good", r.victims)
	case len(r.victims) > 0 && st.Persistent == 0:
		r.violate("the victims' blobs never answered 503")
	}
	if r.cfg.Storm > 0 && st.Stormed == 0 {
		r.violate("the 503 storm hit no request: it tested nothing")
	}
}

// checkOneJobPerSpec: a spec has one AMR job (amr_submissions); a job of the same spec recorded
// beside it would export the same objects again.
func (r *Runner) checkOneJobPerSpec(jobs []*amrpipev1.JobRecord) {
	bySpec := map[string][]string{}
	for _, j := range jobs {
		id := j.GetSpec().GetSpecId()
		bySpec[id] = append(bySpec[id], j.GetJobId()+" "+jobstore.StateName(j.GetState()))
	}
	for spec, ids := range bySpec {
		if len(ids) > 1 {
			sort.Strings(ids)
			r.violate("spec %s has %d jobs recorded: %s", spec, len(ids), strings.Join(ids, ", "))
		}
	}
}

// checkContent compares the content records downstream with the ground truth: nothing twice,
// nothing outside the truth, and nothing missing but under a job that ended FAILED (the deepest
// job covering the object's URL: the one that should have published it). A DONE job also has
// exactly the records on its subject that its record counts.
func (r *Runner) checkContent(ctx context.Context, jobs []*amrpipev1.JobRecord, got *testenv.Downstream) error {
	want := map[testenv.Object]int{}
	urls := map[testenv.Object]string{}
	for _, p := range r.plans {
		part, err := testenv.Truth(ctx, r.tenant, p.GetTargets(), testenv.TenantOptions(p.GetOptions()), func(o *tenant.Object) {
			urls[testenv.Object{Type: string(o.Type), ID: o.ID}] = strings.ToLower(o.ServerURL)
		})
		if err != nil {
			return fmt.Errorf("ground truth of plan %s: %w", p.GetPlanId(), err)
		}
		for o, n := range part {
			want[o] += n
		}
	}
	r.rep.Expected, r.rep.Records, r.rep.Batches = len(want), got.Records, got.Batches
	if len(want) < r.cfg.MinObjects {
		r.violate("the plans cover %d content objects, want at least %d", len(want), r.cfg.MinObjects)
	}
	cover := coverage(jobs)
	var dup, extra, lost []string
	for o, n := range got.Content {
		r.rep.Delivered += n
		switch {
		case want[o] == 0:
			extra = append(extra, fmt.Sprintf("%s %s from %v", o.Type, o.ID, got.From[o]))
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s %s (%s) %d times: %v", o.Type, o.ID, urls[o], n, got.From[o]))
		}
	}
	for o := range want {
		if got.Content[o] > 0 {
			continue
		}
		owners := cover.owners(urls[o])
		failed := len(owners) > 0
		for _, j := range owners {
			failed = failed && j.GetState() == amrpipev1.JobState_JOB_STATE_FAILED
		}
		if failed {
			r.rep.MissingUnderFailed++
			continue
		}
		var ids []string
		for _, j := range owners {
			ids = append(ids, j.GetJobId()+" "+jobstore.StateName(j.GetState()))
		}
		lost = append(lost, fmt.Sprintf("%s %s (%s), jobs %v", o.Type, o.ID, urls[o], ids))
	}
	r.rep.Duplicated, r.rep.Unexpected, r.rep.Missing = len(dup), len(extra), len(lost)
	for _, l := range []struct {
		what string
		list []string
	}{{"delivered more than once", dup}, {"delivered but not in the ground truth", extra}, {"missing under no FAILED job", lost}} {
		if len(l.list) > 0 {
			sort.Strings(l.list)
			r.violate("%d content objects %s, e.g. %s", len(l.list), l.what, strings.Join(l.list[:min(5, len(l.list))], "; "))
		}
	}
	for _, j := range jobs {
		if j.GetState() == amrpipev1.JobState_JOB_STATE_DONE && int64(got.ByJob[j.GetJobId()]) != j.GetRecords() {
			r.violate("DONE job %s counts %d records, its subject holds %d", j.GetJobId(), j.GetRecords(), got.ByJob[j.GetJobId()])
		}
	}
	return nil
}

// coverIndex maps a lower-case server-relative URL to the jobs reading it as one of their URLs
// (security-only jobs publish no content and are left out).
type coverIndex map[string][]*amrpipev1.JobRecord

func coverage(jobs []*amrpipev1.JobRecord) coverIndex {
	c := coverIndex{}
	for _, j := range jobs {
		if j.GetSpec().GetEmit() == amrpipev1.Emit_EMIT_SECURITY_ONLY {
			continue
		}
		for _, p := range jobPaths(j.GetSpec().GetUrls()) {
			c[p] = append(c[p], j)
		}
	}
	return c
}

// owners are the jobs whose URL is the deepest at or above u: the jobs that publish the object
// at u (a probe leaves its subfolders to their own jobs).
func (c coverIndex) owners(u string) []*amrpipev1.JobRecord {
	for p := strings.TrimSuffix(u, "/"); p != ""; {
		if js, ok := c[p]; ok {
			return js
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return nil
}

// checkTokens: every stored change token was committed by a DONE job, and (docs: sizing's
// "Incremental plans") only once every job of its plan reading that list (for a folder's token,
// reading in or above that folder) completed: a token
// stored while a job reading part of the list failed would make the next incremental pass skip
// what that job never delivered.
func (r *Runner) checkTokens(ctx context.Context, js jetstream.JetStream, byID map[string]*amrpipev1.JobRecord, jobs []*amrpipev1.JobRecord) error {
	kv, err := js.KeyValue(ctx, topology.BucketTokens)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", topology.BucketTokens, err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	defer func() { _ = keys.Stop() }() // the listing is over when Keys closes: nothing to report
	for key := range keys.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("token %s: %w", key, err)
		}
		var tok amrpipev1.StoredToken
		if err := proto.Unmarshal(e.Value(), &tok); err != nil {
			return fmt.Errorf("token %s: %w", key, err)
		}
		r.rep.Tokens++
		j := byID[tok.GetJobId()]
		if j == nil || j.GetState() != amrpipev1.JobState_JOB_STATE_DONE {
			state := "unknown"
			if j != nil {
				state = jobstore.StateName(j.GetState())
			}
			r.violate("change token of list %s committed by job %s, which is %s", tok.GetListId(), tok.GetJobId(), state)
			continue
		}
		for _, other := range jobs {
			if other.GetSpec().GetPlanId() == j.GetSpec().GetPlanId() && other.GetState() != amrpipev1.JobState_JOB_STATE_DONE &&
				slices.ContainsFunc(other.GetSpec().GetListIds(), func(id string) bool { return strings.EqualFold(id, tok.GetListId()) }) &&
				inScope(other.GetSpec().GetUrls(), tok.GetScope()) {
				r.violate("change token of list %s committed (by job %s) although job %s (%s) of the same plan, reading that list, ended %s",
					tok.GetListId(), j.GetJobId(), other.GetJobId(), strings.Join(jobPaths(other.GetSpec().GetUrls()), ", "),
					jobstore.StateName(other.GetState()))
			}
		}
	}
	return nil
}

// inScope reports whether a job reads under a folder token's scope (every job does for a list's
// token, whose scope is empty).
func inScope(urls []string, scope string) bool {
	scope = strings.ToLower(strings.TrimRight(scope, "/"))
	return scope == "" || slices.ContainsFunc(urls, func(u string) bool {
		u = strings.ToLower(u)
		return u == scope || strings.HasPrefix(u, scope+"/") || strings.HasPrefix(scope, u+"/")
	})
}

// checkDeadLetters counts the dead letters per stage and checks the forgeries: each dead-lettered
// by the relay with its reason, none relayed (its event id is neither on AMR_EVENTS nor in
// amr_seen), and no job waits for a file a forged upload named.
func (r *Runner) checkDeadLetters(ctx context.Context, js jetstream.JetStream, jobs []*amrpipev1.JobRecord) error {
	r.mu.Lock()
	forgeries, forgeErr := r.forgeries, r.forgeErr
	r.mu.Unlock()
	// The relay reads the queue every few seconds: give it a minute to get to the last forgery.
	var dls []*amrpipev1.DeadLetter
	for deadline := time.Now().Add(time.Minute); ; {
		var err error
		dls, err = testenv.ReadMessages(ctx, js, topology.StreamDLQ, topology.DLQSubject("*"), func() *amrpipev1.DeadLetter { return &amrpipev1.DeadLetter{} })
		if err != nil {
			return err
		}
		if allForged(dls, forgeries) || time.Now().After(deadline) {
			break
		}
		if err := backoff.Sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	if forgeErr != nil {
		r.violate("the forgeries were not posted: %v", forgeErr)
	}
	r.rep.Forged = forgeries
	r.rep.DeadLetters = map[string]map[string]int{}
	for _, dl := range dls {
		if r.rep.DeadLetters[dl.GetStage()] == nil {
			r.rep.DeadLetters[dl.GetStage()] = map[string]int{}
		}
		kind := reasonKind(dl.GetReason())
		for _, f := range forgeries {
			if string(dl.GetPayload()) == f.Text {
				kind = "forged: " + f.Kind
			}
		}
		r.rep.DeadLetters[dl.GetStage()][kind]++
	}
	r.checkUnexpectedDeadLetters(dls, forgeries)
	events, err := testenv.ReadMessages(ctx, js, topology.StreamEvents, topology.EventSubject("*", "*"), func() *amrpipev1.RelayedEvent { return &amrpipev1.RelayedEvent{} })
	if err != nil {
		return err
	}
	relayed := map[string]bool{}
	for _, ev := range events {
		relayed[ev.GetEventId()] = true
	}
	for _, f := range forgeries {
		i := slices.IndexFunc(dls, func(dl *amrpipev1.DeadLetter) bool {
			return dl.GetStage() == topology.StageRelay && string(dl.GetPayload()) == f.Text
		})
		switch {
		case i < 0:
			r.violate("forged %s of job %s is not among the relay's dead letters", f.Kind, f.Job)
		case !strings.Contains(dls[i].GetReason(), f.Reason):
			r.violate("forged %s of job %s dead-lettered with %q, want a reason saying %q", f.Kind, f.Job, oneLine(dls[i].GetReason(), 300), f.Reason)
		}
		if f.EventID == "" {
			continue
		}
		seen, err := r.stack.Store.Seen(ctx, f.Job, f.EventID)
		if err != nil {
			return err
		}
		if relayed[f.EventID] || seen {
			r.violate("forged %s of job %s was relayed (event %s)", f.Kind, f.Job, f.EventID)
		}
	}
	for _, j := range jobs {
		if slices.Contains(j.GetFilesAnnounced(), ForgedFile) {
			r.violate("job %s expects %s, which only a forged upload named", j.GetJobId(), ForgedFile)
		}
	}
	return nil
}

// checkUnexpectedDeadLetters: the only dead letters are the relay's of the forgeries (and of the
// queue messages of a job an interrupted submission left unrecorded, which the relay gives up on as
// another tool's) and the decryptor's of the victims' blobs.
func (r *Runner) checkUnexpectedDeadLetters(dls []*amrpipev1.DeadLetter, forgeries []Forgery) {
	for _, dl := range dls {
		switch dl.GetStage() {
		case topology.StageRelay:
			if slices.ContainsFunc(forgeries, func(f Forgery) bool { return string(dl.GetPayload()) == f.Text }) ||
				strings.Contains(dl.GetReason(), "another tool's job") {
				continue
			}
		case topology.StageDecryptor:
			if jobID, err := topology.SubjectJob(dl.GetSubject()); err == nil && r.victimJob[jobID] {
				continue
			}
		}
		r.violate("unexpected dead letter of %s (%s): %s", dl.GetStage(), dl.GetSubject(), oneLine(dl.GetReason(), 400))
	}
}

// checkSummaries: every final job has one summary, failed exactly when the job FAILED, and a DONE
// job's summary counts its records.
func (r *Runner) checkSummaries(ctx context.Context, js jetstream.JetStream, jobs []*amrpipev1.JobRecord) error {
	sums, err := testenv.ReadMessages(ctx, js, topology.StreamDone, topology.DoneSubject("*"), func() *amrpipev1.JobSummary { return &amrpipev1.JobSummary{} })
	if err != nil {
		return err
	}
	byJob := map[string][]*amrpipev1.JobSummary{}
	for _, sm := range sums {
		byJob[sm.GetJobId()] = append(byJob[sm.GetJobId()], sm)
	}
	r.rep.Summaries = len(sums)
	for _, j := range jobs {
		got := byJob[j.GetJobId()]
		failed := j.GetState() == amrpipev1.JobState_JOB_STATE_FAILED
		switch {
		case len(got) != 1:
			r.violate("job %s (%s) has %d summaries, want 1", j.GetJobId(), jobstore.StateName(j.GetState()), len(got))
		case got[0].GetFailed() != failed:
			r.violate("job %s ended %s, its summary says failed=%t", j.GetJobId(), jobstore.StateName(j.GetState()), got[0].GetFailed())
		case !failed && got[0].GetRecords() != j.GetRecords():
			r.violate("DONE job %s counts %d records, its summary %d", j.GetJobId(), j.GetRecords(), got[0].GetRecords())
		}
	}
	return nil
}

// allForged reports whether every forgery is among the dead letters.
func allForged(dls []*amrpipev1.DeadLetter, forgeries []Forgery) bool {
	for _, f := range forgeries {
		if !slices.ContainsFunc(dls, func(dl *amrpipev1.DeadLetter) bool { return string(dl.GetPayload()) == f.Text }) {
			return false
		}
	}
	return true
}

// checkProcesses: no process exited by itself (a service must ride out a nats-server restart),
// and no data race was reported.
func (r *Runner) checkProcesses() {
	for _, p := range r.stack.Procs() {
		for _, u := range p.Unexpected() {
			r.violate("%s", u)
		}
		if r.cfg.Race && p.LogContains("WARNING: DATA RACE") {
			r.violate("%s reported a data race (log %s)", p.Name, p.LogPath)
		}
	}
}

// reasonKind shortens a dead letter's reason to its kind, for the report: ids, names and
// numbers vary.
func reasonKind(reason string) string {
	reason = guidRE.ReplaceAllString(shortReason(reason), "<id>")
	reason = fileRE.ReplaceAllString(reason, "<id>/<file>")
	return oneLine(numberRE.ReplaceAllString(reason, "N"), 110)
}

// shortReason is a reason without the storage client's request dump (URL, response headers).
func shortReason(reason string) string {
	reason = oneLine(reason, 2000)
	if i := requestRE.FindStringIndex(reason); i != nil {
		reason = reason[:i[0]]
	}
	return oneLine(reason, 300)
}

var (
	guidRE    = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	fileRE    = regexp.MustCompile(`<id>/[A-Za-z0-9._-]+`)
	numberRE  = regexp.MustCompile(`([0-9]+(\.[0-9]+)?(ms|h|m|s)?)+`)
	requestRE = regexp.MustCompile(`: (GET|PUT|HEAD|POST|DELETE) https?://`)
)

// describe names a job by its kind and URLs, for the report.
func describe(spec *amrpipev1.JobSpec) string {
	kind := "single"
	switch {
	case spec.GetEmit() == amrpipev1.Emit_EMIT_SECURITY_ONLY:
		kind = "security"
	case spec.GetProbe():
		kind = "probe"
	case spec.GetMulti():
		kind = "multi"
	}
	paths := jobPaths(spec.GetUrls())
	if len(paths) == 0 {
		return kind
	}
	if len(paths) > 1 {
		return fmt.Sprintf("%s %s and %d more URLs", kind, paths[0], len(paths)-1)
	}
	return kind + " " + paths[0]
}

// oneLine keeps the first n bytes of s on one line.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
