package topology_test

import (
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// FuzzNames feeds names from outside (event names, ids, manifest file names) to the functions
// that turn them into subjects and object names: they never panic, what they accept is bounded
// and safe, and a subject built from accepted tokens parses back to them.
func FuzzNames(f *testing.F) {
	const job = "1efa0a61-ec6e-4225-83fe-14196215476c"
	for _, s := range []string{"JobEnd", "FinishManifestFileUpload", job, "a.b", "", "*", "../x", job + "/Manifest.xml",
		job + "/../x", strings.Repeat("JobEnd", 900), "é", "\x00", job + "/a?sig=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := topology.CheckToken(s); err == nil {
			if len(s) == 0 || len(s) > topology.MaxTokenLen || strings.ContainsAny(s, ".*> \t\r\n") {
				t.Fatalf("CheckToken accepted %q", s)
			}
			jobID, event, err := topology.SubjectEvent(topology.EventSubject(job, s))
			if err != nil || jobID != job || event != s {
				t.Fatalf("event subject of %q parses back as %q %q %v", s, jobID, event, err)
			}
			if got, err := topology.SubjectJob(topology.RecordSubject(s)); err != nil || got != s {
				t.Fatalf("record subject of job %q parses back as %q %v", s, got, err)
			}
		}
		if file, err := topology.ManifestFile(job, s); err == nil {
			if file == "" || len(file) > topology.MaxFileNameLen || strings.ContainsAny(file, "/\\?#&:") ||
				strings.Contains(file, "..") || strings.HasPrefix(file, ".") {
				t.Fatalf("ManifestFile accepted %q as %q", s, file)
			}
		} else if strings.Contains(err.Error(), "sig=x") {
			t.Fatalf("the refusal of %q quotes the signature: %v", s, err)
		}
		_, _ = topology.SubjectJob(s)
	})
}
