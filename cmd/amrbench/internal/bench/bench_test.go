package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
)

// run is what main does, minus the process: parse args, run, close.
func run(ctx context.Context, args []string, out io.Writer) error {
	m := &Main{Out: out, FlagOutput: io.Discard}
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	err := m.Run(ctx)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestSubcommands generates a small manifest and parses it both ways: the
// record counts must match what the generator wrote.
func TestSubcommands(t *testing.T) {
	file := filepath.Join(t.TempDir(), "Manifest.xml")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"gen", "-size", "200000", "-out", file}, &out); err != nil {
		t.Fatal(err)
	}
	var gen struct {
		File           string
		Bytes, Records int64
	}
	if err := json.Unmarshal(out.Bytes(), &gen); err != nil || gen.Records == 0 || gen.File != file {
		t.Fatalf("gen output %q: %v", out.String(), err)
	}
	for _, cmd := range []string{"parse", "parse-stdxml"} {
		for _, repeat := range []string{"1", "3"} {
			out.Reset()
			if err := run(context.Background(), []string{cmd, "-repeat", repeat, file}, &out); err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			// The output format scripts/bench.sh reads: one JSON line with exactly these keys.
			var line map[string]any
			if err := json.Unmarshal(out.Bytes(), &line); err != nil {
				t.Fatalf("%s output %q: %v", cmd, out.String(), err)
			}
			keys := []string{}
			for k := range line {
				keys = append(keys, k)
			}
			if !sameSet(keys, []string{"bytes", "records", "seconds", "cpu_seconds"}) || strings.Count(out.String(), "\n") != 1 {
				t.Errorf("%s output %q: want one line with bytes, records, seconds, cpu_seconds", cmd, out.String())
			}
			var got struct{ Bytes, Records int64 }
			if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Bytes != gen.Bytes || got.Records != gen.Records {
				t.Errorf("%s output %q, want bytes %d records %d (%v)", cmd, out.String(), gen.Bytes, gen.Records, err)
			}
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	want := map[string]bool{}
	for _, s := range b {
		want[s] = true
	}
	return len(a) == len(b) && reflect.DeepEqual(m, want)
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    Main
		wantErr string
	}{
		{name: "gen defaults", args: []string{"gen", "-out", "f.xml"}, want: Main{Cmd: "gen", Size: 25_000_000, Seed: 1, OutPath: "f.xml"}},
		{name: "gen flags", args: []string{"gen", "-size", "1000", "-seed", "9", "-out", "f.xml"}, want: Main{Cmd: "gen", Size: 1000, Seed: 9, OutPath: "f.xml"}},
		{name: "parse", args: []string{"parse", "f.xml"}, want: Main{Cmd: "parse", Repeat: 1, File: "f.xml"}},
		{name: "parse-stdxml repeat", args: []string{"parse-stdxml", "-repeat", "4", "f.xml"}, want: Main{Cmd: "parse-stdxml", Repeat: 4, File: "f.xml"}},
		{name: "no subcommand", args: nil, wantErr: "usage: amrbench"},
		{name: "unknown subcommand", args: []string{"nope"}, wantErr: `unknown subcommand "nope"`},
		{name: "gen without -out", args: []string{"gen", "-size", "10"}, wantErr: "-out is required"},
		{name: "gen bad size", args: []string{"gen", "-size", "big", "-out", "f.xml"}, wantErr: "invalid value"},
		{name: "parse without file", args: []string{"parse"}, wantErr: "want one file"},
		{name: "parse two files", args: []string{"parse", "a.xml", "b.xml"}, wantErr: "want one file"},
		{name: "parse bad repeat", args: []string{"parse-stdxml", "-repeat", "x", "f.xml"}, wantErr: "invalid value"},
		{name: "parse unknown flag", args: []string{"parse", "-size", "1", "f.xml"}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Main{FlagOutput: io.Discard}
			err := m.ParseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m.FlagOutput = nil
			if !reflect.DeepEqual(m, tt.want) {
				t.Errorf("got %+v, want %+v", m, tt.want)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "Manifest.xml")
	if err := run(context.Background(), []string{"gen", "-size", "50000", "-out", file}, io.Discard); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		args    []string
		wantErr string
	}{
		{name: "parse missing file", ctx: context.Background(), args: []string{"parse", filepath.Join(dir, "none.xml")}, wantErr: "none.xml"},
		{name: "gen into a missing directory", ctx: context.Background(), args: []string{"gen", "-out", filepath.Join(dir, "no", "f.xml")}, wantErr: "gen:"},
		{name: "parse interrupted", ctx: cancelled, args: []string{"parse", file}, wantErr: "parse interrupted"},
		{name: "gen interrupted", ctx: cancelled, args: []string{"gen", "-size", "50000", "-out", filepath.Join(dir, "g.xml")}, wantErr: "gen interrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(tt.ctx, tt.args, &out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if out.Len() != 0 {
				t.Errorf("a failed run printed %q", out.String())
			}
		})
	}
}

// TestExecuteExitCodes checks what the process exits with through svc.Execute: 2 for a bad
// command line, 1 for a failed (or interrupted) run, 0 for a result.
func TestExecuteExitCodes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "Manifest.xml")
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStdout string
		wantStderr string
	}{
		{name: "gen", args: []string{"gen", "-size", "50000", "-out", file}, want: 0, wantStdout: `"records":`},
		{name: "parse", args: []string{"parse", file}, want: 0, wantStdout: `"cpu_seconds":`},
		{name: "bad command line", args: []string{"parse"}, want: 2, wantStderr: "amrbench: parse: want one file"},
		{name: "failed run", args: []string{"parse", filepath.Join(dir, "none.xml")}, want: 1, wantStderr: "amrbench: parse:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			m := &Main{Out: &stdout, FlagOutput: io.Discard}
			if got := svc.Execute("amrbench", m, tt.args, &stderr); got != tt.want {
				t.Errorf("exit %d, want %d (stderr %q)", got, tt.want, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stdout %q stderr %q, want %q and %q", stdout.String(), stderr.String(), tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

// TestGoTable: runs of `go test -bench` become one row per benchmark and unit with the median
// and the range, the code before beside the code after, a benchmark the code before lacks shown
// with a dash; -units picks the units and their order.
func TestGoTable(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"gotable", "-before", "testdata/before.txt", "-units", "records/s,records/cpu-s,ms/job",
		"testdata/after.txt"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := `| benchmark | unit | before: median (min–max) | after: median (min–max) | runs before / after |
|---|---|---:|---:|---:|
| ParseAndPublish/batch=256/concurrency=2 | records/s | 60000 (50000–70000) | 105000 (90000–120000) | 3 / 4 |
| ParseAndPublish/batch=256/concurrency=2 | records/cpu-s | 42000 (40000–45000) | 61000 (55000–65000) | 3 / 4 |
| EmissionURLs/urls=5000 | ms/job | – | 136 (136–136) | 0 / 1 |
`
	if out.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := run(context.Background(), []string{"gotable", "testdata/after.txt"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| EmissionURLs/urls=5000 | records/job | 20000 (20000–20000) | 1 |") || strings.Contains(out.String(), "allocs/op") {
		t.Fatalf("table without -before and -units:\n%s", out.String())
	}
}
