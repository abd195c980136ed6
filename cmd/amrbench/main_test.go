package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
)

// TestSubcommands generates a small manifest and parses it both ways: the
// record counts must match what the generator wrote.
func TestSubcommands(t *testing.T) {
	file := filepath.Join(t.TempDir(), "Manifest.xml")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"gen", "-size", "200000", "-out", file}, &out); err != nil {
		t.Fatal(err)
	}
	var gen struct{ Bytes, Records int64 }
	if err := json.Unmarshal(out.Bytes(), &gen); err != nil || gen.Records == 0 {
		t.Fatalf("gen output %q: %v", out.String(), err)
	}
	for _, cmd := range []string{"parse", "parse-stdxml"} {
		out.Reset()
		if err := run(context.Background(), []string{cmd, file}, &out); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		var got struct{ Bytes, Records int64 }
		if err := json.Unmarshal(out.Bytes(), &got); err != nil || got != gen {
			t.Errorf("%s output %q, want bytes %d records %d (%v)", cmd, out.String(), gen.Bytes, gen.Records, err)
		}
	}
	if err := run(context.Background(), []string{"nope"}, &out); err == nil {
		t.Error("unknown subcommand accepted")
	}
}
