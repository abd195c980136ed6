package client_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestRecordsDocCoversTheProto keeps docs/records.md in step with records.proto: every message
// has a "### Name" section whose table lists exactly its fields, each with the JSON form the
// encoder gives it.
func TestRecordsDocCoversTheProto(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc := readFieldTables(t, filepath.Join(root, "docs", "records.md"))
	msgs := amrpipev1.File_amrpipe_v1_records_proto.Messages()
	for i := range msgs.Len() {
		m := msgs.Get(i)
		name := string(m.Name())
		rows, ok := doc[name]
		if !ok {
			t.Errorf("docs/records.md has no section \"### %s\"", name)
			continue
		}
		fields := m.Fields()
		for j := range fields.Len() {
			f := fields.Get(j)
			json, ok := rows[string(f.Name())]
			if !ok {
				t.Errorf("docs/records.md, %s: field %s is missing", name, f.Name())
				continue
			}
			if want := jsonForm(f); json != want {
				t.Errorf("docs/records.md, %s.%s: JSON %q, want %q", name, f.Name(), json, want)
			}
		}
		for field := range rows {
			if fields.ByName(protoreflect.Name(field)) == nil {
				t.Errorf("docs/records.md, %s: field %s is not in records.proto", name, field)
			}
		}
		delete(doc, name)
	}
	for name := range doc {
		t.Errorf("docs/records.md has a section for %s, which records.proto lacks", name)
	}
}

// readFieldTables reads the "### Message" sections of the doc: field name to its JSON cell.
func readFieldTables(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "### "):
			cur = map[string]string{}
			out[strings.TrimSpace(strings.TrimPrefix(line, "### "))] = cur
		case strings.HasPrefix(line, "## "):
			cur = nil
		case cur != nil && strings.HasPrefix(line, "| `"):
			cells := strings.Split(strings.Trim(line, "|"), "|")
			if len(cells) < 4 {
				t.Fatalf("%s: row %q has fewer than 4 cells", path, line)
			}
			cur[strings.Trim(strings.TrimSpace(cells[0]), "`")] = strings.TrimSpace(cells[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// jsonForm is how protojson writes a field, in the doc's words.
func jsonForm(f protoreflect.FieldDescriptor) string {
	if f.IsMap() {
		return "object of strings"
	}
	var one string
	switch f.Kind() {
	case protoreflect.StringKind:
		one = "string"
	case protoreflect.BoolKind:
		one = "`true` (false: omitted)"
	case protoreflect.Int32Kind, protoreflect.DoubleKind:
		one = "number"
	case protoreflect.Int64Kind, protoreflect.Uint64Kind:
		one = "string (decimal)"
	case protoreflect.MessageKind:
		name := string(f.Message().Name())
		if f.Message().FullName() == "google.protobuf.Timestamp" {
			one = "string (RFC 3339, UTC)"
			break
		}
		link := fmt.Sprintf("[%s](#%s)", name, strings.ToLower(name))
		if f.IsList() {
			return "array of objects (" + link + ")"
		}
		return "object (" + link + ")"
	default:
		one = "kind " + f.Kind().String()
	}
	if f.IsList() {
		if one == "string (decimal)" {
			return "array of strings (decimal)"
		}
		return "array of " + one
	}
	return one
}
