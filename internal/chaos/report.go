package chaos

// This file is the run's report: what was injected, what was found, as a markdown table for a
// closing note.

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/pkg/stage/registry"
)

// Report is what a run injected and what it found.
type Report struct {
	Mode string
	Seed int64
	// Dir holds the run's logs and stores.
	Dir string

	// Kills counts the SIGKILLs per stage; KillTotal all of them.
	Kills     map[string]int
	KillTotal int
	// NATSRestarts counts nats-server restarts; NATSDown is how long the last one took until the
	// server was ready again, Reconnected how long after that every stage was ready.
	NATSRestarts          int
	NATSDown, Reconnected time.Duration
	// Storm is how long every blob answered 503; Stormed how many 503s that was.
	Storm   time.Duration
	Stormed int64
	// Undecided counts the 503s the proxy answered while it could not tell a victim's blob (the
	// job store was unreachable).
	Undecided int64
	// VictimURLs are the drawn URLs whose jobs' blobs always answer 503 (VictimFile only, if
	// set); VictimJobs those jobs;
	// PersistentBlobs the blobs that did, with their 503 counts, Persistent503 all of them.
	VictimURLs      []string
	VictimFile      string
	VictimJobs      []string
	PersistentBlobs map[string]int
	Persistent503   int64
	// Forged are the forged queue messages.
	Forged []Forgery

	// Jobs, Done and Failed count the jobs; FailedJobs says why each failed one did.
	Jobs, Done, Failed int
	FailedJobs         []string
	// Expected content objects (the ground truth), Delivered content records, objects missing
	// under FAILED jobs, and the violations: Duplicated, Unexpected and Missing (elsewhere).
	Expected, Delivered, MissingUnderFailed, Duplicated, Unexpected, Missing int
	// Records and Batches are on the records stream.
	Records, Batches int
	// DeadLetters counts the dead letters per stage and kind of reason.
	DeadLetters map[string]map[string]int
	// Tokens counts the change tokens committed; Summaries the job summaries on AMR_DONE.
	Tokens, Summaries int

	// Violations are the checks that failed; none for a passing run.
	Violations []string
	// StartedIn is the time to build and start everything; Export from the plans' submission
	// to the pipeline's idleness; Took the whole run.
	StartedIn, Export, Took time.Duration
}

// Passed reports a run without violations.
func (r *Report) Passed() bool { return len(r.Violations) == 0 }

// Markdown renders the report as two tables and the list of violations.
func (r *Report) Markdown() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed() {
		verdict = fmt.Sprintf("FAIL (%d violations)", len(r.Violations))
	}
	fmt.Fprintf(&b, "### Chaos run: %s mode, seed %d: %s\n\n", r.Mode, r.Seed, verdict)
	fmt.Fprintf(&b, "Replay: `%s=%d`%s. Took %s (build and start %s, export under chaos until idle %s).\n\n",
		EnvSeed, r.Seed, modeEnv(r.Mode), r.Took.Round(time.Second), r.StartedIn.Round(time.Second), r.Export.Round(time.Second))

	b.WriteString("| injected | |\n|---|---|\n")
	row(&b, "stage processes killed (SIGKILL, then started again)", fmt.Sprintf("%d: %s", r.KillTotal, r.killsByStage()))
	row(&b, "nats-server restarts (SIGKILL, same port and store)", fmt.Sprintf("%d (server ready again after %s, every stage ready %s later)",
		r.NATSRestarts, r.NATSDown.Round(time.Millisecond), r.Reconnected.Round(time.Millisecond)))
	row(&b, "503 ServerBusy storm on every blob", fmt.Sprintf("%s, %d answers", r.Storm, r.Stormed))
	if r.Undecided > 0 {
		row(&b, "503 while the proxy could not look a job up (nats-server down)", fmt.Sprint(r.Undecided))
	}
	which := "every blob"
	if r.VictimFile != "" {
		which = r.VictimFile
	}
	row(&b, "persistent 503: "+which+" of the jobs reading", fmt.Sprintf("%s (%d jobs: %s)", list(r.VictimURLs), len(r.VictimJobs), list(r.VictimJobs)))
	row(&b, "persistent 503 answers", fmt.Sprintf("%d on %d blobs (%s)", r.Persistent503, len(r.PersistentBlobs), r.blobNames()))
	kinds := map[string]int{}
	for _, f := range r.Forged {
		kinds[f.Kind]++
	}
	row(&b, "forged report-queue messages", fmt.Sprintf("%d: %s", len(r.Forged), counts(kinds)))

	b.WriteString("\n| found | |\n|---|---|\n")
	row(&b, "jobs", fmt.Sprintf("%d: %d DONE, %d FAILED", r.Jobs, r.Done, r.Failed))
	for _, f := range r.FailedJobs {
		row(&b, "FAILED job", f)
	}
	row(&b, "content objects", fmt.Sprintf("expected %d, delivered %d, missing under FAILED jobs %d, missing elsewhere %d, duplicated %d, unexpected %d",
		r.Expected, r.Delivered, r.MissingUnderFailed, r.Missing, r.Duplicated, r.Unexpected))
	row(&b, "records downstream", fmt.Sprintf("%d in %d batches; %d job summaries, one per job", r.Records, r.Batches, r.Summaries))
	for _, st := range r.dlqStages() {
		n := 0
		for _, c := range r.DeadLetters[st] {
			n += c
		}
		row(&b, "dead letters: "+st, fmt.Sprintf("%d: %s", n, counts(r.DeadLetters[st])))
	}
	row(&b, "change tokens committed", fmt.Sprintf("%d, each by a DONE job whose plan's jobs reading its list all ended DONE", r.Tokens))
	row(&b, "violations", fmt.Sprintf("%d", len(r.Violations)))
	if len(r.Violations) > 0 {
		b.WriteString("\nViolations:\n\n")
		for _, v := range r.Violations {
			fmt.Fprintf(&b, "- %s\n", v)
		}
	}
	return b.String()
}

func (r *Report) killsByStage() string {
	var parts []string
	for _, d := range registry.All() {
		parts = append(parts, fmt.Sprintf("%s %d", d.Name, r.Kills[d.Name]))
	}
	return strings.Join(parts, ", ")
}

// blobNames are the file names of the blobs that always failed, with how many jobs each.
func (r *Report) blobNames() string {
	files := map[string]int{}
	for b := range r.PersistentBlobs {
		files[b[strings.LastIndex(b, "/")+1:]]++
	}
	return counts(files)
}

func (r *Report) dlqStages() []string {
	var out []string
	for st := range r.DeadLetters {
		out = append(out, st)
	}
	sort.Strings(out)
	return out
}

func modeEnv(mode string) string {
	if mode == "full" {
		return " " + EnvMode + "=full"
	}
	return ""
}

func row(b *strings.Builder, k, v string) {
	fmt.Fprintf(b, "| %s | %s |\n", k, strings.ReplaceAll(v, "|", `\|`))
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// counts renders a tally, most first.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, "; ")
}
