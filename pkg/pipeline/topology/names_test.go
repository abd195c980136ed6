package topology_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

func TestManifestFile(t *testing.T) {
	const job = "1efa0a61-ec6e-4225-83fe-14196215476c"
	tests := []struct {
		name, in, want, why string
	}{
		{"manifest", job + "/Manifest.xml", "Manifest.xml", ""},
		{"split part", job + "/Manifest12.xml", "Manifest12.xml", ""},
		{"job id in upper case", strings.ToUpper(job) + "/UserGroup.xml", "UserGroup.xml", ""},
		{"no folder", "Manifest.xml", "", "not under a job folder"},
		{"empty", "", "", "not under a job folder"},
		{"another job", "2efa0a61-ec6e-4225-83fe-14196215476c/Manifest.xml", "", "outside the folder"},
		{"parent", "../" + job + "/Manifest.xml", "", "outside the folder"},
		{"absolute", "/" + job + "/Manifest.xml", "", "outside the folder"},
		{"URL", "https://evil/x", "", "outside the folder"},
		{"scheme inside the folder", job + "/https:x.xml", "", `":"`},
		{"subfolder", job + "/a/Manifest.xml", "", `"/"`},
		{"backslash", job + `/a\b.xml`, "", `"\\"`},
		{"dot dot", job + "/..", "", "parent folder"},
		{"dot dot inside", job + "/a..b.xml", "", "'..'"},
		{"hidden", job + "/.x", "", "dot file"},
		{"no file", job + "/", "", "no file name"},
		{"percent-encoded", job + "/%2e%2e", "", `"%"`},
		{"NUL", job + "/a\x00.xml", "", `"\x00"`},
		{"non-ASCII", job + "/Mänifest.xml", "", "in its file name"},
		{"too long", job + "/" + strings.Repeat("a", topology.MaxFileNameLen+1), "", "over 128"},
		{"longest allowed", job + "/" + strings.Repeat("a", topology.MaxFileNameLen), strings.Repeat("a", topology.MaxFileNameLen), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := topology.ManifestFile(job, tt.in)
			if tt.why == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ManifestFile(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !errors.Is(err, topology.ErrBadManifestName) || !strings.Contains(err.Error(), tt.why) || got != "" {
				t.Fatalf("ManifestFile(%q) = %q, %v; want an error saying %q", tt.in, got, err, tt.why)
			}
		})
	}
}

func TestManifestFileRedactsSignatures(t *testing.T) {
	_, err := topology.ManifestFile("1efa0a61-ec6e-4225-83fe-14196215476c", "https://acct.blob.core.windows.net/c/x?sv=2024&sig=c2VjcmV0")
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("error %v carries the signature", err)
	}
}

func TestSubjectJob(t *testing.T) {
	const job = "1efa0a61-ec6e-4225-83fe-14196215476c"
	tests := []struct {
		subject, job, event string
		ok                  bool
	}{
		{topology.JobSubject(job), job, "", true},
		{topology.ManifestSubject(job), job, "", true},
		{topology.RecordSubject(job), job, "", true},
		{topology.DoneSubject(job), job, "", true},
		{topology.EventSubject(job, topology.EventJobEnd), job, topology.EventJobEnd, true},
		{"amr.events." + job, "", "", false},
		{"amr.events." + job + ".", "", "", false},
		{"amr.events." + job + ".JobEnd.x", "", "", false},
		{"amr.manifests." + job + ".x", "", "", false},
		{"amr.records.", "", "", false},
		{"amr.specs.plan", "", "", false},
		{"other." + job, "", "", false},
	}
	for _, tt := range tests {
		got, err := topology.SubjectJob(tt.subject)
		if (err == nil) != tt.ok || got != tt.job {
			t.Errorf("SubjectJob(%q) = %q, %v; want %q, ok %v", tt.subject, got, err, tt.job, tt.ok)
		}
		if err != nil && !errors.Is(err, topology.ErrNotOurSubject) {
			t.Errorf("SubjectJob(%q): %v is not ErrNotOurSubject", tt.subject, err)
		}
		if tt.event == "" {
			continue
		}
		j, ev, err := topology.SubjectEvent(tt.subject)
		if err != nil || j != tt.job || ev != tt.event {
			t.Errorf("SubjectEvent(%q) = %q, %q, %v", tt.subject, j, ev, err)
		}
	}
}
