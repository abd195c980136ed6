package report

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFileIsWholeOrNothing: a write that fails leaves neither a cut file nor a temporary one,
// and keeps the previous report; one that succeeds replaces it, readable by all.
func TestWriteFileIsWholeOrNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	if err := os.WriteFile(path, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		write func(io.Writer) error
		want  string // the file's content afterwards
		err   bool
	}{
		{"fails half-way", func(w io.Writer) error {
			if _, err := io.WriteString(w, "half"); err != nil {
				return err
			}
			return errors.New("disk full")
		}, "previous", true},
		{"succeeds", func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }, "new", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteFile(path, tt.write)
			if (err != nil) != tt.err {
				t.Fatalf("err %v", err)
			}
			b, rerr := os.ReadFile(path)
			if rerr != nil || string(b) != tt.want {
				t.Errorf("file holds %q (%v), want %q", b, rerr, tt.want)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("%d entries in the directory, want the report alone", len(entries))
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, %v", fi.Mode(), err)
			}
		})
	}
}
