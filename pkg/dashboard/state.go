package dashboard

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/runreport"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Snapshot is what every server-sent event carries: the whole picture, bounded (Options), so a
// client that missed events or reconnects needs nothing else.
type Snapshot struct {
	// At is when the snapshot was built (the server's clock).
	At time.Time `json:"at"`
	// Jobs counts every job known by state name; JobsTotal all of them; JobsShown how many are
	// in Jobs (at most Options.MaxJobs: live ones first, then the most recently updated).
	JobsByState map[string]int `json:"jobsByState"`
	JobsTotal   int            `json:"jobsTotal"`
	JobsShown   int            `json:"jobsShown"`
	Jobs        []JobView      `json:"jobs"`
	// Plans are the plans of the jobs known, newest first (at most Options.MaxPlans).
	Plans       []PlanView      `json:"plans"`
	PlansTotal  int             `json:"plansTotal"`
	Throttling  Throttling      `json:"throttling"`
	DeadLetters DeadLetterViews `json:"deadLetters"`
	// Validation is the link to the validation report ("" when none is configured or written).
	Validation string `json:"validation,omitempty"`
	// Problems are the dashboard's own troubles reading JetStream (redacted), by feed.
	Problems []string `json:"problems"`
}

// JobView is one job's row.
type JobView struct {
	ID    string `json:"id"`
	Plan  string `json:"plan"`
	State string `json:"state"`
	// Target is the job's first URL (and how many more), Kind "probe", "security", "multi-url"
	// or "single".
	Target string `json:"target"`
	Kind   string `json:"kind"`
	// Objects is SharePoint's count so far; Expected its expected total, which may still grow
	// while SharePoint reports (never below Objects). Percent is nil while Expected is unknown and
	// below 100 until the job is done.
	Objects  int64    `json:"objects"`
	Expected int64    `json:"expected"`
	Percent  *float64 `json:"percent"`
	// Rate is objects per second (over the last minute of updates while live, over the whole
	// job once it ended); ETASeconds is nil when unknown or not live.
	Rate       float64  `json:"rate"`
	ETASeconds *float64 `json:"etaSeconds"`
	Records    int64    `json:"records"`
	// Postponed counts SharePoint's JobPostponed events; SQLThrottleMs its JobEnd
	// WaitTimeOnSqlThrottlingMilliseconds.
	Postponed     int     `json:"postponed"`
	SQLThrottleMs float64 `json:"sqlThrottleMs"`
	Error         string  `json:"error,omitempty"`
	Updated       string  `json:"updated"`
}

// PlanView is one plan's row.
type PlanView struct {
	ID string `json:"id"`
	// State is runreport.PlanState's words, or "unknown" until its status was read.
	State       string         `json:"state"`
	JobsByState map[string]int `json:"jobsByState"`
	Specs       int            `json:"specs"`
	// SpecsPending have no job yet; SpecsDeadLettered were dead-lettered without one.
	SpecsPending      int64    `json:"specsPending"`
	SpecsDeadLettered int64    `json:"specsDeadLettered"`
	PlanningFailed    []string `json:"planningFailed,omitempty"`
	Objects           int64    `json:"objects"`
	Records           int64    `json:"records"`
	Report            string   `json:"report"`
}

// Throttling is what the pipeline knows of SharePoint slowing it down.
type Throttling struct {
	// Hosts are the tenant hosts paused now after a 429/503 Retry-After (amr_throttle).
	Hosts []HostPause `json:"hosts"`
	// Postponed and SQLThrottleMs are the sums over every job seen (JobPostponed events, JobEnd
	// WaitTimeOnSqlThrottlingMilliseconds).
	Postponed     int     `json:"postponed"`
	SQLThrottleMs float64 `json:"sqlThrottleMs"`
}

// HostPause is one paused host.
type HostPause struct {
	Host  string    `json:"host"`
	Until time.Time `json:"until"`
}

// DeadLetterViews are the newest dead letters (at most Options.MaxDeadLetters) and how many AMR_DLQ
// holds.
type DeadLetterViews struct {
	Total  int64            `json:"total"`
	Recent []DeadLetterView `json:"recent"`
}

// DeadLetterView is one dead letter, its texts redacted (sas.Redact).
type DeadLetterView struct {
	Seq        uint64    `json:"seq"`
	Stage      string    `json:"stage"`
	Subject    string    `json:"subject"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
	Deliveries uint64    `json:"deliveries"`
}

// rateWindow is how far back a live job's rate looks.
const rateWindow = time.Minute

// sample is a job's object count at a record update.
type sample struct {
	at      time.Time
	objects int64
}

// job is what the dashboard keeps of a job it shows.
type job struct {
	rec     *amrpipev1.JobRecord
	updated time.Time
	samples []sample // within rateWindow of the newest, oldest first
	// postponed and sqlMs come from SharePoint's events (the events feed).
	postponed int
	sqlMs     float64
}

// brief is what the dashboard keeps of every job, shown or not: enough to count by state.
type brief struct {
	plan  string
	state amrpipev1.JobState
}

// plan is what the dashboard keeps of a plan.
type plan struct {
	id     string
	latest time.Time // the newest update of one of its jobs
	status *amrpipev1.PlanStatus
	// dirty: something changed since status was read.
	dirty bool
}

// state is the dashboard's picture of the pipeline, fed by the feeds and read by the clients.
// Every change bumps version and wakes the clients waiting in changed.
type state struct {
	o  Options
	mu sync.Mutex

	version uint64
	changed chan struct{} // closed and replaced on every change

	all       map[string]brief
	jobs      map[string]*job // at most about MaxJobs (prune)
	byState   map[amrpipev1.JobState]int
	plans     map[string]*plan
	planState map[string]map[amrpipev1.JobState]int

	pauses     map[string]time.Time
	postponed  int
	sqlMs      float64
	dead       []DeadLetterView // newest last, at most MaxDeadLetters
	deadTotal  int64
	problems   map[string]string
	validation string

	// buildMu guards built and builtVersion: the last snapshot encoded.
	buildMu      sync.Mutex
	built        []byte
	builtVersion uint64
}

func newState(o Options) *state {
	return &state{o: o, changed: make(chan struct{}), all: map[string]brief{}, jobs: map[string]*job{},
		byState: map[amrpipev1.JobState]int{}, plans: map[string]*plan{}, planState: map[string]map[amrpipev1.JobState]int{},
		pauses: map[string]time.Time{}, problems: map[string]string{}}
}

// bump records a change; the caller holds mu.
func (s *state) bump() {
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait returns the current version and a channel closed at the next change.
func (s *state) wait() (uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version, s.changed
}

// putJob applies a job record unless the one kept is newer (a resync's snapshot may be older
// than a change the watch delivered meanwhile).
func (s *state) putJob(rec *amrpipev1.JobRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := rec.GetJobId()
	updated := rec.GetUpdated().AsTime()
	b := brief{plan: rec.GetSpec().GetPlanId(), state: rec.GetState()}
	j := s.jobs[id]
	switch {
	case j != nil && !updated.After(j.updated):
		return // this write or a later one is applied already (every write sets Updated)
	case j == nil && jobstore.Final(rec) && s.all[id] == b:
		return // a finished job pruned from the details, read again by a resync: counted already
	}
	s.count(id, b)
	if j == nil {
		j = &job{}
		s.jobs[id] = j
	}
	if len(j.samples) == 0 || rec.GetObjectsProcessed() != j.samples[len(j.samples)-1].objects {
		j.samples = append(j.samples, sample{at: updated, objects: rec.GetObjectsProcessed()})
		cut := 0
		for cut < len(j.samples)-2 && updated.Sub(j.samples[cut].at) > rateWindow {
			cut++
		}
		j.samples = j.samples[cut:]
	}
	j.rec, j.updated = rec, updated
	if pid := rec.GetSpec().GetPlanId(); pid != "" {
		p := s.plans[pid]
		if p == nil {
			p = &plan{id: pid}
			s.plans[pid] = p
		}
		p.dirty = true
		if updated.After(p.latest) {
			p.latest = updated
		}
	}
	s.prune()
	s.bump()
}

// deleteJob forgets a job whose record was deleted or expired.
func (s *state) deleteJob(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.all[id]; !ok {
		return
	}
	s.count(id, brief{})
	delete(s.jobs, id)
	s.bump()
}

// count moves a job between the state counts; a zero brief removes it.
func (s *state) count(id string, b brief) {
	if old, ok := s.all[id]; ok {
		s.byState[old.state]--
		s.planState[old.plan][old.state]--
	}
	if b == (brief{}) {
		delete(s.all, id)
		return
	}
	s.all[id] = b
	s.byState[b.state]++
	if s.planState[b.plan] == nil {
		s.planState[b.plan] = map[amrpipev1.JobState]int{}
	}
	s.planState[b.plan][b.state]++
}

// prune drops the details of the jobs beyond MaxJobs (finished ones updated longest ago first)
// once there are a tenth more, so that it sorts rarely; their counts stay.
func (s *state) prune() {
	if len(s.jobs) <= s.o.MaxJobs+max(s.o.MaxJobs/10, 1) {
		return
	}
	for _, id := range s.order()[s.o.MaxJobs:] {
		delete(s.jobs, id)
	}
}

// order lists the kept jobs live first, then by last update, newest first.
func (s *state) order() []string {
	ids := make([]string, 0, len(s.jobs))
	for id := range s.jobs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		ja, jb := s.jobs[a], s.jobs[b]
		if la, lb := !jobstore.Final(ja.rec), !jobstore.Final(jb.rec); la != lb {
			if la {
				return -1
			}
			return 1
		}
		if c := jb.updated.Compare(ja.updated); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return ids
}

// addEvent folds a JobPostponed or JobEnd event into its job (when shown) and the totals.
func (s *state) addEvent(ev *amrpipev1.RelayedEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := ev.GetEvent()
	j := s.jobs[e.GetJobId()]
	switch p := e.GetPayload().(type) {
	case *amrpipev1.MigrationEvent_JobPostponed:
		s.postponed++
		if j != nil {
			j.postponed++
		}
	case *amrpipev1.MigrationEvent_JobEnd:
		ms := p.JobEnd.GetWaitTimeOnSqlThrottlingMilliseconds()
		s.sqlMs += ms
		if j != nil {
			j.sqlMs += ms
		}
	default:
		return
	}
	s.bump()
}

// setPause records a host's pause.
func (s *state) setPause(host string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauses[host] = until
	s.bump()
}

// setValidation sets the validation report's link ("" while there is none).
func (s *state) setValidation(link string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.validation != link {
		s.validation = link
		s.bump()
	}
}

// expirePauses forgets the pauses that ended by now; the bucket's entries outlive them.
func (s *state) expirePauses(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.pauses)
	for h, until := range s.pauses {
		if !until.After(now) {
			delete(s.pauses, h)
		}
	}
	if len(s.pauses) != n {
		s.bump()
	}
}

// addDeadLetter keeps a dead letter among the newest; counted tells whether the total includes
// it already (read back from before the dashboard started).
func (s *state) addDeadLetter(seq uint64, dl *amrpipev1.DeadLetter, counted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = append(s.dead, DeadLetterView{Seq: seq, Stage: clip(dl.GetStage()), Subject: redact(dl.GetSubject()),
		Reason: redact(dl.GetReason()), At: dl.GetAt().AsTime(), Deliveries: dl.GetDeliveries()})
	if over := len(s.dead) - s.o.MaxDeadLetters; over > 0 {
		s.dead = slices.Delete(s.dead, 0, over)
	}
	if !counted {
		s.deadTotal++
	}
	// A dead-lettered spec or planning changes its plan's status.
	for _, p := range s.plans {
		p.dirty = true
	}
	s.bump()
}

// setDeadTotal sets the count of dead letters stored when the dashboard started reading.
func (s *state) setDeadTotal(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadTotal = n
	s.bump()
}

// problem records (or with err nil clears) a feed's trouble.
func (s *state) problem(feed string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	text := ""
	if err != nil {
		text = redact(fmt.Sprintf("%s: %v", feed, err))
	}
	if s.problems[feed] == text {
		return
	}
	if text == "" {
		delete(s.problems, feed)
	} else {
		s.problems[feed] = text
	}
	s.bump()
}

// dirtyPlans returns the plans whose status should be read again, newest first, at most n.
func (s *state) dirtyPlans(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*plan
	for _, p := range s.plans {
		if p.dirty {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *plan) int { return b.latest.Compare(a.latest) })
	ids := make([]string, 0, min(n, len(out)))
	for _, p := range out[:min(n, len(out))] {
		ids = append(ids, p.id)
		p.dirty = false
	}
	return ids
}

// markDirty has a plan's status read again (its last read failed).
func (s *state) markDirty(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.plans[id]; p != nil {
		p.dirty = true
	}
}

// setPlanStatus stores a plan's status as read.
func (s *state) setPlanStatus(st *amrpipev1.PlanStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.plans[st.GetPlanId()]; p != nil {
		p.status = st
		s.bump()
	}
}

// snapshot returns the current picture as JSON and its version; it is built once per version,
// whatever the number of clients.
func (s *state) snapshot(now time.Time) ([]byte, uint64, error) {
	// One build at a time, encoded outside mu so that the feeds go on meanwhile.
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	s.mu.Lock()
	if s.built != nil && s.builtVersion == s.version {
		defer s.mu.Unlock()
		return s.built, s.version, nil
	}
	snap, version := s.build(now), s.version
	s.mu.Unlock()
	data, err := json.Marshal(snap)
	if err != nil {
		return nil, 0, fmt.Errorf("encode the dashboard's snapshot: %w", err)
	}
	s.built, s.builtVersion = data, version
	return data, version, nil
}

// build makes the snapshot; the caller holds mu.
func (s *state) build(now time.Time) *Snapshot {
	snap := &Snapshot{At: now.UTC(), JobsByState: names(s.byState), JobsTotal: len(s.all), Jobs: []JobView{}, Plans: []PlanView{},
		Problems: []string{}, Throttling: Throttling{Hosts: []HostPause{}, Postponed: s.postponed, SQLThrottleMs: s.sqlMs},
		DeadLetters: DeadLetterViews{Total: s.deadTotal, Recent: []DeadLetterView{}}}
	order := s.order()
	for _, id := range order[:min(len(order), s.o.MaxJobs)] {
		snap.Jobs = append(snap.Jobs, view(id, s.jobs[id]))
	}
	snap.JobsShown = len(snap.Jobs)
	plans := make([]*plan, 0, len(s.plans))
	for _, p := range s.plans {
		plans = append(plans, p)
	}
	slices.SortFunc(plans, func(a, b *plan) int {
		if c := b.latest.Compare(a.latest); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	snap.PlansTotal = len(plans)
	for _, p := range plans[:min(len(plans), s.o.MaxPlans)] {
		snap.Plans = append(snap.Plans, planView(p, names(s.planState[p.id])))
	}
	for h, until := range s.pauses {
		snap.Throttling.Hosts = append(snap.Throttling.Hosts, HostPause{Host: h, Until: until.UTC()})
	}
	slices.SortFunc(snap.Throttling.Hosts, func(a, b HostPause) int { return strings.Compare(a.Host, b.Host) })
	for i := len(s.dead) - 1; i >= 0; i-- {
		snap.DeadLetters.Recent = append(snap.DeadLetters.Recent, s.dead[i])
	}
	for _, p := range s.problems {
		snap.Problems = append(snap.Problems, p)
	}
	slices.Sort(snap.Problems)
	snap.Validation = s.validation
	return snap
}

// names keys counts by state name, leaving out zeros.
func names(counts map[amrpipev1.JobState]int) map[string]int {
	out := map[string]int{}
	for st, n := range counts {
		if n > 0 {
			out[jobstore.StateName(st)] = n
		}
	}
	return out
}

// view makes a job's row.
func view(id string, j *job) JobView {
	r := j.rec
	v := JobView{ID: id, Plan: r.GetSpec().GetPlanId(), State: jobstore.StateName(r.GetState()), Kind: runreport.Kind(r.GetSpec()),
		Target: target(r.GetSpec()), Objects: r.GetObjectsProcessed(), Expected: max(r.GetExpectedObjects(), r.GetObjectsProcessed()),
		Records: r.GetRecords(), Postponed: j.postponed, SQLThrottleMs: j.sqlMs, Error: redact(r.GetLastError()),
		Updated: j.updated.UTC().Format(time.RFC3339)}
	done := r.GetState() == amrpipev1.JobState_JOB_STATE_DONE
	switch {
	case done:
		v.Percent = ptr(100.0)
	case v.Expected > 0:
		// Never 100 % before the job is done: SharePoint's expected total may still grow, and a
		// job whose objects are all exported still has files to parse.
		v.Percent = ptr(min(float64(v.Objects)*100/float64(v.Expected), 99.9))
	}
	live := !jobstore.Final(r)
	if n := len(j.samples); live && n >= 2 {
		first, last := j.samples[0], j.samples[n-1]
		if dt := last.at.Sub(first.at).Seconds(); dt > 0 {
			v.Rate = float64(last.objects-first.objects) / dt
		}
	}
	if start, end := r.GetStarted().AsTime(), r.GetEnded().AsTime(); v.Rate == 0 && r.GetStarted() != nil {
		if r.GetEnded() == nil {
			end = j.updated
		}
		if dt := end.Sub(start).Seconds(); dt > 0 {
			v.Rate = float64(v.Objects) / dt
		}
	}
	if live && v.Rate > 0 && v.Expected > v.Objects {
		v.ETASeconds = ptr(float64(v.Expected-v.Objects) / v.Rate)
	}
	return v
}

// maxText bounds a text shown (a reason, an error, a URL): the page is for a glance, `amrctl`
// shows the rest; and redacting a long text costs time the feeds do not have.
const maxText = 2000

// clip cuts s to maxText bytes (keeping valid UTF-8), marking the cut.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	return strings.ToValidUTF8(s[:maxText], "") + "…"
}

// redact is every text the page shows from the pipeline: clipped, then its secrets redacted (a
// secret cut by the clip is redacted as far as it goes).
func redact(s string) string { return sas.Redact(clip(s)) }

func ptr[T any](v T) *T { return &v }

// target is a job's first URL and how many more it reads.
func target(spec *amrpipev1.JobSpec) string {
	urls := spec.GetUrls()
	switch len(urls) {
	case 0:
		return spec.GetSiteUrl()
	case 1:
		return redact(urls[0])
	}
	return fmt.Sprintf("%s (+%d)", redact(urls[0]), len(urls)-1)
}

// planView makes a plan's row.
func planView(p *plan, jobs map[string]int) PlanView {
	v := PlanView{ID: p.id, State: "unknown", JobsByState: jobs, Report: reportPath(p.id)}
	st := p.status
	if st == nil {
		return v
	}
	v.State = runreport.PlanState(st.GetComplete(), st.GetFailed())
	v.Specs, v.SpecsPending, v.SpecsDeadLettered = len(st.GetSpecs()), st.GetSpecsPending(), st.GetSpecsFailed()
	v.Objects, v.Records = st.GetObjects(), st.GetRecords()
	for _, reason := range st.GetPlanningFailed() {
		v.PlanningFailed = append(v.PlanningFailed, redact(reason))
	}
	return v
}
