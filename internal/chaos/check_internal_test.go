package chaos

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestOwners: an object missing downstream is excused only when the job that should have published
// it failed: the job whose URL is the deepest at or above the object's (a probe leaves its
// subfolders to their jobs; security-only jobs publish no content).
func TestOwners(t *testing.T) {
	job := func(id string, emit amrpipev1.Emit, urls ...string) *amrpipev1.JobRecord {
		return &amrpipev1.JobRecord{JobId: id, Spec: &amrpipev1.JobSpec{Urls: urls, Emit: emit}}
	}
	site := "http://127.0.0.1:8787"
	c := coverage([]*amrpipev1.JobRecord{
		job("probe", amrpipev1.Emit_EMIT_PROBE, site+"/sites/hr/Shared Documents"),
		job("multi", amrpipev1.Emit_EMIT_ALL, site+"/sites/hr/Shared Documents/Team-0001", site+"/sites/hr/Shared%20Documents/Team-0002"),
		job("security", amrpipev1.Emit_EMIT_SECURITY_ONLY, site+"/sites/hr/Lists/Tasks"),
	})
	tests := []struct {
		url  string
		want []string
	}{
		{"/sites/hr/shared documents", []string{"probe"}},
		{"/sites/hr/shared documents/readme.docx", []string{"probe"}},
		{"/sites/hr/shared documents/team-0001", []string{"multi"}},
		{"/sites/hr/shared documents/team-0002/a/b.docx", []string{"multi"}},
		{"/sites/hr/shared documents/team-00010/x.docx", []string{"probe"}},
		{"/sites/hr/lists/tasks/1_.000", nil},
		{"/sites/other", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, j := range c.owners(tt.url) {
			got = append(got, j.GetJobId())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("owners(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

func TestReasonKind(t *testing.T) {
	tests := []struct{ in, want string }{
		{"failed 3 times, last: throttled 1m32s after publication: download 6b116026-0500-4091-a4f7-b71e66fa6ba7/Manifest.xml: " +
			"GET http://127.0.0.1:45583/devstoreaccount1/amr-manifests/x\n--------\nRESPONSE 503",
			"failed N times, last: throttled N after publication: download <id>/<file>"},
		{"the envelope of job 68dd992d-b78f-4eec-b9de-a741895c875f carries an event of job 4a89f67a-ead5-46ba-a3bc-cfa8226a33eb: not relayed",
			"the envelope of job <id> carries an event of job <id>: not relayed"},
	}
	for _, tt := range tests {
		if got := reasonKind(tt.in); got != tt.want {
			t.Errorf("reasonKind(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// TestStartStackFailureIsAnError: a stack that cannot start (here: no nats-server binary) is an
// error saying what failed, with what had started stopped; it once panicked on the cleanup
// (a nil *Stack), which hid the error of a CI run.
func TestStartStackFailureIsAnError(t *testing.T) {
	s, err := StartStack(context.Background(), Config{}, t.TempDir(), filepath.Join(t.TempDir(), "no-binaries"), nil)
	if err == nil || s != nil {
		t.Fatalf("StartStack without binaries: %v, %v; want an error and no stack", s, err)
	}
	if !strings.Contains(err.Error(), "start the stack") {
		t.Errorf("error %q does not say the stack failed to start", err)
	}
}
