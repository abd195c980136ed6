package amrevent_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the decoder's output")

// fixture is one event JSON from testdata.
type fixture struct {
	name string
	data []byte
}

// loadFixtures returns every event in testdata: the derived and verbatim
// JSON files, each line of amr-2019.jsonl and each Logs string of the
// GetMigrationJobProgress response.
func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	var fs []fixture
	files, err := filepath.Glob(filepath.Join("testdata", "derived", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("testdata", "verbatim", "JobEnd.import.json"))
	for _, f := range files {
		fs = append(fs, fixture{strings.TrimSuffix(filepath.Base(f), ".json"), readFile(t, f)})
	}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, filepath.Join("testdata", "verbatim", "amr-2019.jsonl"))))
	for i := 1; sc.Scan(); i++ {
		fs = append(fs, fixture{"amr-2019-" + strconv.Itoa(i), bytes.Clone(sc.Bytes())})
	}
	var resp struct {
		D struct {
			GetMigrationJobProgress struct {
				Logs      struct{ Results []string }
				NextToken string
			}
		}
	}
	if err := json.Unmarshal(readFile(t, filepath.Join("testdata", "progress", "GetMigrationJobProgress.200.json")), &resp); err != nil {
		t.Fatal(err)
	}
	for i, s := range resp.D.GetMigrationJobProgress.Logs.Results {
		fs = append(fs, fixture{"progress-" + strconv.Itoa(i+1), []byte(s)})
	}
	if len(fs) != 14+1+2+4 {
		t.Fatalf("found %d fixtures, want 21", len(fs))
	}
	return fs
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFixtures decodes every fixture, compares it with its golden
// MigrationEvent, and checks that encoding it back and decoding again gives
// the same event and the same EventID.
func TestFixtures(t *testing.T) {
	ids := map[string]string{}
	for _, f := range loadFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			ev, err := amrevent.DecodeEvent(f.data)
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetType() == amrpipev1.EventType_EVENT_TYPE_UNKNOWN || ev.GetPayload() == nil {
				t.Errorf("event %q not recognised", ev.GetRawName())
			}
			golden := filepath.Join("testdata", "golden", f.name+".pb.json")
			if *update {
				out, err := protojson.MarshalOptions{Multiline: true}.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(out, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := &amrpipev1.MigrationEvent{}
			if err := protojson.Unmarshal(readFile(t, golden), want); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(ev, want) {
				t.Errorf("decoded event differs from %s:\ngot  %v\nwant %v", golden, ev, want)
			}

			enc, err := amrevent.EncodeEvent(ev)
			if err != nil {
				t.Fatal(err)
			}
			back, err := amrevent.DecodeEvent(enc)
			if err != nil {
				t.Fatalf("decoding %s: %v", enc, err)
			}
			if !proto.Equal(back, ev) {
				t.Errorf("round trip through %s:\ngot  %v\nwant %v", enc, back, ev)
			}
			id := amrevent.EventID(ev)
			if amrevent.EventID(back) != id {
				t.Errorf("EventID changed by re-encoding")
			}
			if other, dup := ids[id]; dup {
				t.Errorf("EventID %s shared with %s", id, other)
			}
			ids[id] = f.name
		})
	}
}
