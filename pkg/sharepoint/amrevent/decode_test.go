package amrevent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
)

func decodeFixture(t *testing.T, name string) *amrpipev1.MigrationEvent {
	t.Helper()
	for _, f := range loadFixtures(t) {
		if f.name == name {
			ev, err := amrevent.DecodeEvent(f.data)
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
	}
	t.Fatalf("no fixture %s", name)
	return nil
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestFixtureValues spells out, per fixture, the typed values a consumer
// relies on (the golden files cover the rest).
func TestFixtureValues(t *testing.T) {
	tests := []struct {
		fixture string
		typ     amrpipev1.EventType
		jobID   string
		time    string
		check   func(*amrpipev1.MigrationEvent) bool
	}{
		{"amr-2019-1", amrpipev1.EventType_EVENT_TYPE_JOB_QUEUED, "1efa0a61-ec6e-4225-83fe-14196215476c", "2019-12-04T01:47:45.938Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				q := ev.GetJobQueued()
				return q.GetMigrationType() == "AsyncRead" && q.GetMigrationDirection() == "Export" && q.GetDbId() == "09ee44f2-ff0c-4981-9d9c-b430ad700828"
			}},
		{"amr-2019-2", amrpipev1.EventType_EVENT_TYPE_FINISH_MANIFEST_FILE_UPLOAD, "1efa0a61-ec6e-4225-83fe-14196215476c", "2019-12-04T01:47:50.150Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetFinishManifestFileUpload().GetManifestFileName() == "1efa0a61-ec6e-4225-83fe-14196215476c/Manifest.xml" &&
					ev.GetCorrelationId() == "460c1e9f-901b-0000-357d-ce21398ef257"
			}},
		{"progress-3", amrpipev1.EventType_EVENT_TYPE_JOB_ERROR, "3e280efa-78a3-4ba1-bac6-e447aa538ca5", "2025-05-20T09:20:55.490Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				e := ev.GetJobError()
				return e.GetErrorCode() == -2147286782 && e.GetObjectType() == "ListItem" && e.GetSourceListItemIntId() == 3 &&
					e.GetTargetListItemIntId() == 3 && e.GetUrl() == "" && e.GetId() == "cb471d5f-593f-4a63-b59e-8eae3e35b08a"
			}},
		{"progress-4", amrpipev1.EventType_EVENT_TYPE_JOB_END, "3e280efa-78a3-4ba1-bac6-e447aa538ca5", "2025-05-20T09:20:57.380Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				s := ev.GetJobEnd()
				item := s.GetObjectsStatsByType()["SPListItem"]
				return s.GetTotalExpectedSpObjects() == 15 && s.GetTotalErrors() == 3 && !s.GetIsShallowCopy() &&
					len(s.GetObjectsStatsByType()) == 5 && item.GetCount() == 1 && item.GetTotalTime() == 1880 &&
					len(s.GetCreatedOrUpdatedFileStatsBySize()) == 0 && len(ev.GetExtra()) == 0
			}},
		{"JobProgress", amrpipev1.EventType_EVENT_TYPE_JOB_PROGRESS, "845daca4-5529-4b0e-85ab-a603efee5b12", "2020-09-29T19:56:32.265Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				s := ev.GetJobProgress()
				b := s.GetCreatedOrUpdatedFileStatsBySize()["0-1K"]
				return s.GetFilesCreated() == 15 && s.GetObjectsProcessed() == 217 && s.GetTotalExpectedSpObjects() == 403 &&
					b.GetCount() == 15 && b.GetTotalSize() == 45 && b.GetTotalDownloadTime() == 251 && b.GetTotalCreationTime() == 6754 &&
					s.GetObjectsStatsByType()["SPFile"].GetCount() == 200
			}},
		{"JobEnd.amr", amrpipev1.EventType_EVENT_TYPE_JOB_END, "e915f93a-b377-476e-995c-952fd28c0a12", "2023-11-28T13:41:06.109Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				s := ev.GetJobEnd()
				return s.GetFilesCreated() == 182 && s.GetBytesProcessed() == 441084014 && s.GetTotalExpectedSpObjects() == 425 &&
					s.GetMigrationType() == "AsyncRead" && s.GetMigrationDirection() == "Export" && ev.GetCorrelationId() == ""
			}},
		{"JobEnd.import-2023", amrpipev1.EventType_EVENT_TYPE_JOB_END, "16d658cf-ecd3-485f-9c9e-1ca268565e24", "2020-09-29T20:29:38.180Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetJobEnd().GetTotalDurationInMs() == 372294.0861 && ev.GetJobEnd().GetSqlQueryCount() == 1998
			}},
		{"JobEnd.import", amrpipev1.EventType_EVENT_TYPE_JOB_END, "aed28dcc-efc3-46c3-89f2-b5df71ccfe85", "2024-04-11T14:51:53.531Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetJobEnd().GetFilesCreatedIrrespectiveOfVersions() == 1 && ev.GetJobEnd().GetBytesProcessedOnlyCurrentVersion() == 111001
			}},
		{"JobPostponed", amrpipev1.EventType_EVENT_TYPE_JOB_POSTPONED, "845daca4-5529-4b0e-85ab-a603efee5b12", "2020-09-29T19:56:57.598Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				p := ev.GetJobPostponed()
				return p.GetNextPickupTime().AsTime().Equal(utc("2020-09-29T20:16:57.519Z")) && p.GetJobsInQueue() == 0
			}},
		{"JobStart", amrpipev1.EventType_EVENT_TYPE_JOB_START, "071f9aad-36e6-4bef-9f09-40b5c7498ecd", "2020-09-29T19:56:29.100Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetJobStart().GetDbId() == "8fd09323-b23f-430d-8957-213586ce3861" // sent as "DBId"
			}},
		{"JobCancelled", amrpipev1.EventType_EVENT_TYPE_JOB_CANCELLED, "071f9aad-36e6-4bef-9f09-40b5c7498ecd", "2020-09-29T19:58:29.053Z",
			func(ev *amrpipev1.MigrationEvent) bool { return !ev.GetJobCancelled().GetCancelledByUser() }},
		{"JobFatalError", amrpipev1.EventType_EVENT_TYPE_JOB_FATAL_ERROR, "8f728c13-95d0-4d54-96bc-4ee912bd32ce", "2019-02-05T06:57:20.523Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				e := ev.GetJobFatalError()
				return e.GetErrorCode() == -2147213196 && e.GetObjectType() == "" && e.GetMessage() == "ErrorMessage "
			}},
		{"JobWarning", amrpipev1.EventType_EVENT_TYPE_JOB_WARNING, "b427d8d7-2b91-4da0-aee5-4b5a5a5d867e", "2019-02-05T06:56:09.732Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetJobWarning().GetUrl() == "Shared Documents/file.pdf"
			}},
		{"JobLogFileCreate", amrpipev1.EventType_EVENT_TYPE_JOB_LOG_FILE_CREATE, "071f9aad-36e6-4bef-9f09-40b5c7498ecd", "2020-09-29T19:56:29.053Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetJobLogFileCreate().GetFileName() == "Import-071f9aad-36e6-4bef-9f09-40b5c7498ecd-1.log"
			}},
		{"JobDeleted", amrpipev1.EventType_EVENT_TYPE_JOB_DELETED, "071f9aad-36e6-4bef-9f09-40b5c7498ecd", "2020-09-29T19:56:29.053Z",
			func(ev *amrpipev1.MigrationEvent) bool { return ev.GetJobDeleted() != nil }},
		{"FinishManifestFileUpload.iso", amrpipev1.EventType_EVENT_TYPE_FINISH_MANIFEST_FILE_UPLOAD, "f8d7d577-676e-47ce-ab69-ae7803979883", "2019-09-03T19:11:33.903Z",
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetFinishManifestFileUpload().GetManifestFileName() == "f8d7d577-676e-47ce-ab69-ae7803979883/ExportSettings.xml"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			ev := decodeFixture(t, tt.fixture)
			if ev.GetType() != tt.typ || ev.GetJobId() != tt.jobID || !ev.GetTime().AsTime().Equal(utc(tt.time)) {
				t.Fatalf("got %v %s %v, want %v %s %s", ev.GetType(), ev.GetJobId(), ev.GetTime().AsTime(), tt.typ, tt.jobID, tt.time)
			}
			if !tt.check(ev) {
				t.Errorf("payload values wrong: %v", ev)
			}
		})
	}
}

func TestTimeFormats(t *testing.T) {
	tests := []struct {
		in, want string // want "" means a *FieldError
	}{
		{"12/04/2019 01:47:45.938", "2019-12-04T01:47:45.938Z"},
		{"12/04/2019 01:47:45", "2019-12-04T01:47:45Z"},
		{"12/04/2019 01:47:45.9381234", "2019-12-04T01:47:45.9381234Z"},
		{" 02/05/2019 06:56:09.732 ", "2019-02-05T06:56:09.732Z"},
		{"12/4/2019 1:47:45 AM", "2019-12-04T01:47:45Z"},
		{"2019-09-03T19:11:33.903", "2019-09-03T19:11:33.903Z"},
		{"2019-09-03T19:11:33", "2019-09-03T19:11:33Z"},
		{"2019-09-03T19:11:33.903Z", "2019-09-03T19:11:33.903Z"},
		{"2019-09-03T21:11:33.903+02:00", "2019-09-03T19:11:33.903Z"},
		{"09/29/2020 19:56:29053", ""},  // the current docs page's typo
		{"09/29/2020 19:56:29:100", ""}, // ditto
		{"13/01/2020 00:00:00", ""},     // dd/MM is not accepted
		{"yesterday", ""},
	}
	for _, tt := range tests {
		ev, err := amrevent.DecodeEvent([]byte(`{"Event":"JobDeleted","Time":"` + tt.in + `"}`))
		if tt.want == "" {
			var fe *amrevent.FieldError
			if !errors.As(err, &fe) || fe.Field != "Time" || fe.Value != tt.in {
				t.Errorf("%q: err = %v, want a FieldError for Time", tt.in, err)
			}
			continue
		}
		if err != nil || !ev.GetTime().AsTime().Equal(utc(tt.want)) {
			t.Errorf("%q: got %v, %v; want %s", tt.in, ev.GetTime().AsTime(), err, tt.want)
		}
	}
}

// TestTolerance: numbers, booleans and null instead of strings, unknown
// fields and event names, key case, duplicate spellings.
func TestTolerance(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		typ       amrpipev1.EventType
		wantExtra map[string]string
		check     func(*amrpipev1.MigrationEvent) bool
	}{
		{"JSON numbers and booleans", `{"Event":"JobCancelled","TotalRetryCount":2,"CancelledByUser":true,"JobId":null}`,
			amrpipev1.EventType_EVENT_TYPE_JOB_CANCELLED, nil,
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetJobCancelled().GetTotalRetryCount() == 2 && ev.GetJobCancelled().GetCancelledByUser() && ev.GetJobId() == ""
			}},
		{"True/False spelling", `{"Event":"JobEnd","IsShallowCopy":"True"}`, amrpipev1.EventType_EVENT_TYPE_JOB_END, nil,
			func(ev *amrpipev1.MigrationEvent) bool { return ev.GetJobEnd().GetIsShallowCopy() }},
		{"stats as a JSON object, not a string", `{"Event":"JobProgress","ObjectsStatsByType":{"SPFile":{"Count":"7","TotalTime":1.5,"New":3}}}`,
			amrpipev1.EventType_EVENT_TYPE_JOB_PROGRESS, map[string]string{"ObjectsStatsByType.SPFile.New": "3"},
			func(ev *amrpipev1.MigrationEvent) bool {
				s := ev.GetJobProgress().GetObjectsStatsByType()["SPFile"]
				return s.GetCount() == 7 && s.GetTotalTime() == 1.5
			}},
		{"unknown fields kept", `{"Event":"JobPostponed","Reason":"7","Nested":{"a":[1,2]},"Nothing":null,"JobsInQueue":"12"}`,
			amrpipev1.EventType_EVENT_TYPE_JOB_POSTPONED, map[string]string{"Reason": "7", "Nested": `{"a":[1,2]}`, "Nothing": ""},
			func(ev *amrpipev1.MigrationEvent) bool { return ev.GetJobPostponed().GetJobsInQueue() == 12 }},
		{"field of another event type kept", `{"Event":"JobEnd","ManifestFileName":"x/Manifest.xml"}`,
			amrpipev1.EventType_EVENT_TYPE_JOB_END, map[string]string{"ManifestFileName": "x/Manifest.xml"},
			func(ev *amrpipev1.MigrationEvent) bool { return ev.GetJobEnd() != nil }},
		{"unknown event", `{"Event":"JobPaused","JobId":"j1","Time":"01/02/2025 03:04:05.006","Foo":"1"}`,
			amrpipev1.EventType_EVENT_TYPE_UNKNOWN, map[string]string{"Foo": "1"},
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetRawName() == "JobPaused" && ev.GetPayload() == nil && ev.GetJobId() == "j1" && ev.GetTime() != nil
			}},
		{"key and name case", `{"event":"jobend","jobid":"J","filescreated":"4"}`, amrpipev1.EventType_EVENT_TYPE_JOB_END, nil,
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetRawName() == "jobend" && ev.GetJobId() == "J" && ev.GetJobEnd().GetFilesCreated() == 4
			}},
		{"two spellings of one field: SharePoint's wins", `{"Event":"JobStart","DbId":"canonical","DBId":"other"}`,
			amrpipev1.EventType_EVENT_TYPE_JOB_START, map[string]string{"DBId": "other"},
			func(ev *amrpipev1.MigrationEvent) bool { return ev.GetJobStart().GetDbId() == "canonical" }},
		{"two spellings of JobId", `{"Event":"JobEnd","JOBID":"other","JobId":"j","ObjectsStatsByType":{"SPFile":{"count":1,"Count":2}}}`,
			amrpipev1.EventType_EVENT_TYPE_JOB_END, map[string]string{"JOBID": "other", "ObjectsStatsByType.SPFile.count": "1"},
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetJobId() == "j" && ev.GetJobEnd().GetObjectsStatsByType()["SPFile"].GetCount() == 2
			}},
		{"flat key that looks like a nested one", `{"Event":"JobEnd","ObjectsStatsByType.SPFile.Count":"9","ObjectsStatsByType":{"SPFile":{"Count":1}}}`,
			amrpipev1.EventType_EVENT_TYPE_JOB_END, map[string]string{"ObjectsStatsByType.SPFile.Count": "9"},
			func(ev *amrpipev1.MigrationEvent) bool {
				return ev.GetJobEnd().GetObjectsStatsByType()["SPFile"].GetCount() == 1
			}},
		{"empty numbers are absent", `{"Event":"JobEnd","FilesCreated":"","TotalDurationInMs":" "}`, amrpipev1.EventType_EVENT_TYPE_JOB_END, nil,
			func(ev *amrpipev1.MigrationEvent) bool { return ev.GetJobEnd().GetFilesCreated() == 0 }},
		{"byte order mark and whitespace", "\xef\xbb\xbf \n{\"Event\":\"JobDeleted\"}\n", amrpipev1.EventType_EVENT_TYPE_JOB_DELETED, nil,
			func(ev *amrpipev1.MigrationEvent) bool { return ev.GetJobDeleted() != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := amrevent.DecodeEvent([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetType() != tt.typ {
				t.Errorf("type %v, want %v", ev.GetType(), tt.typ)
			}
			if !maps.Equal(ev.GetExtra(), tt.wantExtra) {
				t.Errorf("extra %v, want %v", ev.GetExtra(), tt.wantExtra)
			}
			if !tt.check(ev) {
				t.Errorf("values wrong: %v", ev)
			}
			enc, err := amrevent.EncodeEvent(ev)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := amrevent.DecodeEvent(enc); err != nil || !proto.Equal(back, ev) {
				t.Errorf("round trip through %s: %v, %v", enc, back, err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	docExample := string(readFile(t, filepath.Join("testdata", "verbatim", "FinishManifestFileUpload.doc-example.txt")))
	tests := []struct {
		name  string
		in    string
		want  error  // sentinel, or nil for a *FieldError on field
		field string // for FieldError
	}{
		{"empty", "", amrevent.ErrNotJSON, ""},
		{"array", `[{"Event":"JobEnd"}]`, amrevent.ErrNotJSON, ""},
		{"null", `null`, amrevent.ErrNotJSON, ""},
		{"string", `"JobEnd"`, amrevent.ErrNotJSON, ""},
		{"two objects", `{"Event":"JobEnd"}{"Event":"JobEnd"}`, amrevent.ErrNotJSON, ""},
		{"truncated", `{"Event":"JobEnd","JobId":"a`, amrevent.ErrNotJSON, ""},
		{"invalid UTF-8", "{\"Event\":\"Job\xffEnd\"}", amrevent.ErrNotJSON, ""},
		{"doc example with curly quotes", docExample, amrevent.ErrNotJSON, ""},
		{"no Event", `{"JobId":"a","Time":"12/04/2019 01:47:45.938"}`, amrevent.ErrNoEventName, ""},
		{"empty Event", `{"Event":" "}`, amrevent.ErrNoEventName, ""},
		{"null Event", `{"Event":null}`, amrevent.ErrNoEventName, ""},
		{"a 5 KB Event name", `{"Event":"` + strings.Repeat("JobEnd", 900) + `"}`, amrevent.ErrTooLarge, ""},
		{"over 64 KiB", `{"Event":"JobEnd","Message":"` + strings.Repeat("x", 70<<10) + `"}`, amrevent.ErrTooLarge, ""},
		{"too many fields", `{"Event":"JobEnd"` + manyFields(600) + `}`, amrevent.ErrTooLarge, ""},
		{"bad number", `{"Event":"JobEnd","FilesCreated":"12a"}`, nil, "FilesCreated"},
		{"number too large", `{"Event":"JobEnd","BytesProcessed":"99999999999999999999"}`, nil, "BytesProcessed"},
		{"fraction in an integer", `{"Event":"JobQueued","TotalRetryCount":"1.5"}`, nil, "TotalRetryCount"},
		{"NaN duration", `{"Event":"JobEnd","TotalDurationInMs":"NaN"}`, nil, "TotalDurationInMs"},
		{"bad bool", `{"Event":"JobEnd","IsShallowCopy":"maybe"}`, nil, "IsShallowCopy"},
		{"object in a scalar field", `{"Event":"JobEnd","FilesCreated":{"a":1}}`, nil, "FilesCreated"},
		{"bad nested time", `{"Event":"JobPostponed","NextPickupTime":"soon"}`, nil, "NextPickupTime"},
		{"stats not JSON", `{"Event":"JobEnd","ObjectsStatsByType":"{not json"}`, nil, "ObjectsStatsByType"},
		{"stats an array", `{"Event":"JobEnd","ObjectsStatsByType":"[1]"}`, nil, "ObjectsStatsByType"},
		{"stats entry not an object", `{"Event":"JobEnd","ObjectsStatsByType":"{\"SPFile\":5}"}`, nil, "ObjectsStatsByType.SPFile"},
		{"stats value bad", `{"Event":"JobEnd","CreatedOrUpdatedFileStatsBySize":"{\"0-1K\":{\"Count\":\"x\"}}"}`, nil, "CreatedOrUpdatedFileStatsBySize.0-1K.Count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := amrevent.DecodeEvent([]byte(tt.in))
			if ev != nil {
				t.Errorf("got an event with the error: %v", ev)
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				return
			}
			var fe *amrevent.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("err = %v, want a FieldError for %s", err, tt.field)
			}
		})
	}
}

// TestEncodeMatchesWire: EncodeEvent reproduces real messages key for key
// (the 2019 AMR queue messages and the GetMigrationJobProgress sample, which
// carry every documented field), nested stats compared as JSON.
func TestEncodeMatchesWire(t *testing.T) {
	for _, f := range loadFixtures(t) {
		if !strings.HasPrefix(f.name, "amr-2019") && !strings.HasPrefix(f.name, "progress-") {
			continue
		}
		ev, err := amrevent.DecodeEvent(f.data)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := amrevent.EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		var want, got map[string]string
		if err := json.Unmarshal(f.data, &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		for _, k := range []string{"ObjectsStatsByType", "CreatedOrUpdatedFileStatsBySize"} {
			if w, ok := want[k]; ok {
				if !jsonEqual(t, w, got[k]) {
					t.Errorf("%s: %s = %s, want %s", f.name, k, got[k], w)
				}
				delete(want, k)
				delete(got, k)
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: encoded\n%v\nwant\n%v", f.name, got, want)
		}
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// manyFields is n distinct fields, each with a leading comma.
func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `,"F%d":"x"`, i)
	}
	return b.String()
}
