package parser

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

func TestCount(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"40", 40}, {" 1200000 ", 1200000}, {"40.0000000000000", 40}, {"3;#40", 40}, {"", -1}, {"many", -1}, {"-2", -1},
	}
	for _, tt := range tests {
		if got := count(tt.in); got != tt.want {
			t.Errorf("count(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestSetTotals reads a folder's size from its list item's fields: SMTotalFileCount alone, in
// the forms SharePoint may write it; a folder without a readable file count stays unknown.
func TestSetTotals(t *testing.T) {
	field := func(name, value string) *amrpipev1.Field {
		return &amrpipev1.Field{Name: name, Value: value, Type: "Lookup"}
	}
	unknown := &amrpipev1.FolderSize{Files: -1, Folders: -1, TotalsUnknown: true}
	tests := []struct {
		name   string
		fields []*amrpipev1.Field
		want   *amrpipev1.FolderSize
	}{
		{"number", []*amrpipev1.Field{field("SMTotalFileCount", "40")}, &amrpipev1.FolderSize{Files: 40}},
		{"lookup value", []*amrpipev1.Field{field("smtotalfilecount", "7;#40")}, &amrpipev1.FolderSize{Files: 40}},
		{"size beside it", []*amrpipev1.Field{field("SMTotalSize", "4096"), field("SMTotalFileCount", "0")}, &amrpipev1.FolderSize{}},
		// No field of SharePoint counts the folders below a folder; a name that looks like one
		// changes nothing.
		{"folder count is no field", []*amrpipev1.Field{field("SMTotalFileCount", "40"), field("SMTotalFolderCount", "12")},
			&amrpipev1.FolderSize{Files: 40}},
		{"no file count", []*amrpipev1.Field{field("SMTotalFolderCount", "12"), field("Title", "x")}, unknown},
		{"not a number", []*amrpipev1.Field{field("SMTotalFileCount", "many")}, unknown},
		{"no fields", nil, unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := &amrpipev1.FolderSize{Files: -1, Folders: -1, TotalsUnknown: true}
			setTotals(got, tt.fields)
			if !proto.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func probeSpec() *amrpipev1.JobSpec {
	return &amrpipev1.JobSpec{SpecId: "probe-spec", PlanId: "plan", WebUrl: web, Urls: []string{web + "/Docs"},
		Emit: amrpipev1.Emit_EMIT_PROBE, Probe: true, ListIds: []string{"e42a303c-995d-4237-8ce7-3545c41be140"},
		Options: &amrpipev1.ReadOptions{IncludeDirectDescendantsOnly: true}}
}

// scanFile runs a probe scan over a fixture file.
func scanFile(t *testing.T, spec *amrpipev1.JobSpec, name string) *probeScan {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "probe", name))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	s := newProbeScan(spec)
	if err := manifest.Parse(context.Background(), f, manifest.Options{SourceFile: name}, func(r *amrpipev1.Record) error {
		s.observe(r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestProbeScan folds the two parts of a probe in either order: the subfolder whose totals are
// in the other part gets them, the one without totals is unknown, direct files count once.
func TestProbeScan(t *testing.T) {
	spec := probeSpec()
	want := &amrpipev1.ProbeResult{Spec: spec, JobId: "job", DirectFiles: 2, Subfolders: []*amrpipev1.FolderSize{
		{Url: web + "/Docs/2019", WebUrl: web, ListId: spec.GetListIds()[0], Files: 1200000, Folders: 0},
		{Url: web + "/Docs/2020", WebUrl: web, ListId: spec.GetListIds()[0], Files: 900, Folders: 0},
		{Url: web + "/Docs/Misc", WebUrl: web, ListId: spec.GetListIds()[0], Files: -1, Folders: -1, TotalsUnknown: true},
	}}
	for _, order := range [][]string{{"Manifest.xml", "Manifest1.xml"}, {"Manifest1.xml", "Manifest.xml"}} {
		r := &amrpipev1.JobRecord{JobId: "job", Spec: spec, State: amrpipev1.JobState_JOB_STATE_ENDED}
		for _, name := range order {
			sc := scanFile(t, spec, name)
			if _, err := jobstore.Apply(r, time.Now(), jobstore.FileParsed(jobstore.ParsedFile{File: name,
				ProbeSubfolders: sc.folders, ProbeDirectFiles: sc.files})); err != nil {
				t.Fatal(err)
			}
		}
		got := probeResult(r)
		// The order of subfolders follows the files; compare as sets.
		slices.SortFunc(got.Subfolders, func(a, b *amrpipev1.FolderSize) int { return strings.Compare(a.GetUrl(), b.GetUrl()) })
		if !proto.Equal(got, want) {
			t.Errorf("order %v: probe result\n%s\nwant\n%s", order, prototext.Format(got), prototext.Format(want))
		}
	}
	if s := newProbeScan(proto.Clone(spec).(*amrpipev1.JobSpec)); s == nil {
		t.Error("no scan for a probe job")
	}
	if s := newProbeScan(&amrpipev1.JobSpec{Urls: spec.GetUrls()}); s != nil {
		t.Error("a scan for a job that is not a probe")
	}
}
