package cli_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	"github.com/amrpipe/amrpipe/pkg/validate"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// TestValidateBadInputWritesNoReport: a side's CSV with missing columns, a row or a header that
// is not UTF-8, a records file with a bad line, a login mapping that is not UTF-8, a path mapping
// that maps nothing: each ends `amrctl validate` with an error naming
// the file and the row or line (exit status 1), and no report is written: a partial validation is
// never presented as a report.
func TestValidateBadInputWritesNoReport(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := strings.Join(validate.CSVColumns, ",") + "\n"
	row := func(url, author string) string {
		return "/sites/hr/Docs," + url + ",File,1,2024-05-01T12:00:00Z,1," + author + ",b,FALSE,\n"
	}
	good := file("good.csv", head+row("/sites/hr/Docs/a.docx", "a"))
	dst := file("dst.csv", strings.ReplaceAll(head+row("/sites/hr/Docs/a.docx", "a"), "/sites/hr/", "/sites/hr-new/"))
	tn, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	recs, err := testenv.ExportRecords(context.Background(), tn, "job-1", []string{"/sites/small/Shared Documents"}, tenant.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var jsonl bytes.Buffer
	for _, r := range recs[:3] {
		b, err := protojson.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		jsonl.Write(b)
		jsonl.WriteByte('\n')
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"source CSV with missing columns", []string{"--source-csv", file("cols.csv", "List,URL,Type,Size\n/a,/a/b,File,1\n"), "--destination-csv", dst},
			"cols.csv row 1: missing column(s) Modified, Versions, Author, Editor, UniquePermissions, Principals"},
		{"destination CSV with invalid UTF-8 in a row", []string{"--source-csv", good, "--destination-csv",
			file("latin1.csv", head+row("/sites/hr-new/Docs/a.docx", "a")+row("/sites/hr-new/Docs/b.docx", "Ren\xe9"))},
			"latin1.csv row 3 column Author: invalid UTF-8"},
		{"source CSV saved as UTF-16", []string{"--source-csv", file("utf16.csv", "\xff\xfe"+utf16LE(head+row("/sites/hr/Docs/a.docx", "a"))), "--destination-csv", dst},
			"utf16.csv row 1: header: the file is UTF-16, not UTF-8"},
		{"records file with invalid UTF-8", []string{"--source-records", file("bad.jsonl", jsonl.String()+"{\"job_id\":\"caf\xe9\"}\n"), "--destination-csv", dst},
			"--source-records: " + filepath.Join(dir, "bad.jsonl") + " line 4"},
		{"login mapping with invalid UTF-8", []string{"--source-csv", good, "--destination-csv", dst, "--login-map", file("users.csv", "a,b\nRen\xe9,b\n")},
			"users.csv row 2 column A: invalid UTF-8"},
		{"mapping that maps no source item", []string{"--source-csv", good, "--destination-csv", dst, "--map", "/sites/fin=/sites/fin-new"},
			"--map: validate: mapping /sites/fin=/sites/fin-new maps nothing: no item of " + good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "reports")
			args := append([]string{"validate", "--out", out, "--map", "/sites/hr=/sites/hr-new"}, tt.args...)
			stdout, err := amrctl(t, "", args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || cli.ExitCode(err) != cli.ExitFailed {
				t.Fatalf("err %v (exit %d), want one saying %q (exit 1)\n%s", err, cli.ExitCode(err), tt.want, stdout)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("reports written for a failed validation: %v", err)
			}
		})
	}
}

// utf16LE encodes ASCII text as UTF-16LE, as a spreadsheet program's "Unicode text" export does.
func utf16LE(ascii string) string {
	var b strings.Builder
	for i := 0; i < len(ascii); i++ {
		b.WriteByte(ascii[i])
		b.WriteByte(0)
	}
	return b.String()
}

// TestReportOfAnUnknownPlan: `amrctl report` for a plan nobody planned is an error naming --plan,
// and writes nothing.
func TestReportOfAnUnknownPlan(t *testing.T) {
	env := testenv.StartJetStream(t)
	out := filepath.Join(t.TempDir(), "reports")
	stdout, err := amrctl(t, env.Server.ClientURL(), "report", "--plan", "no-such-plan", "--out", out)
	if err == nil || !strings.HasPrefix(err.Error(), "--plan: ") || !strings.Contains(err.Error(), "no-such-plan") || !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("err %v, want an error naming --plan and the plan\n%s", err, stdout)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("report directory created for an unknown plan: %v", err)
	}
}
