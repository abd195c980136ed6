package amrevent_test

import (
	"regexp"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
)

func idOf(t *testing.T, in string) string {
	t.Helper()
	ev, err := amrevent.DecodeEvent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return amrevent.EventID(ev)
}

// TestEventIDSameEvent: re-encodings of the GetMigrationJobProgress JobQueued
// event (as the queue might carry it) keep its identity.
func TestEventIDSameEvent(t *testing.T) {
	base := `{"MigrationType":"None","MigrationDirection":"Import","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":"0","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","Time":"05/20/2025 09:18:48.132","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182","Event":"JobQueued"}`
	want := idOf(t, base)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(want) {
		t.Fatalf("EventID %q is not 32 hex digits", want)
	}
	same := map[string]string{
		"keys reordered":                    `{"Event":"JobQueued","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","Time":"05/20/2025 09:18:48.132","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":"0","MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182"}`,
		"number, ISO time, upper-case GUID": `{"Event":"JobQueued","JobId":"3E280EFA-78A3-4BA1-BAC6-E447AA538CA5","Time":"2025-05-20T09:18:48.1320000Z","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":0,"MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182"}`,
		"zero count left out":               `{"Event":"JobQueued","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","Time":"05/20/2025 09:18:48.132","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182"}`,
	}
	for name, in := range same {
		if got := idOf(t, in); got != want {
			t.Errorf("%s: EventID %s, want %s", name, got, want)
		}
	}
	different := map[string]string{
		"other time":        `{"Event":"JobQueued","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","Time":"05/20/2025 09:18:48.133","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":"0","MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182"}`,
		"other retry count": `{"Event":"JobQueued","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","Time":"05/20/2025 09:18:48.132","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":"1","MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182"}`,
		"other event name":  `{"Event":"JobStart","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","Time":"05/20/2025 09:18:48.132","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":"0","MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182"}`,
		"other job":         `{"Event":"JobQueued","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca6","Time":"05/20/2025 09:18:48.132","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":"0","MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182"}`,
		"other correlation": `{"Event":"JobQueued","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","Time":"05/20/2025 09:18:48.132","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":"0","MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170183"}`,
		"an unknown field":  `{"Event":"JobQueued","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","Time":"05/20/2025 09:18:48.132","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":"0","MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182","Reason":"3"}`,
		"no time":           `{"Event":"JobQueued","JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","SiteId":"48f1898f-77d9-4a1b-bddc-1f49bb6dc134","DbId":"de6b85cd-726e-4b13-ae04-629798fddbf3","TotalRetryCount":"0","MigrationType":"None","MigrationDirection":"Import","CorrelationId":"91884a0c-5ee8-4e1f-a23f-e4f7ec170182"}`,
	}
	for name, in := range different {
		if got := idOf(t, in); got == want {
			t.Errorf("%s: EventID equals the original's", name)
		}
	}
}

// TestEventIDStatsWhitespace: nested stats JSON formatting does not matter.
func TestEventIDStatsWhitespace(t *testing.T) {
	a := idOf(t, `{"Event":"JobEnd","JobId":"j","ObjectsStatsByType":"{\"SPFile\":{\"Count\":1,\"TotalTime\":10}}"}`)
	b := idOf(t, `{"Event":"JobEnd","JobId":"j","ObjectsStatsByType":"{ \"SPFile\" : { \"TotalTime\" : 10.0, \"Count\" : \"1\" } }"}`)
	c := idOf(t, `{"Event":"JobEnd","JobId":"j","ObjectsStatsByType":"{\"SPFolder\":{\"Count\":1,\"TotalTime\":10}}"}`)
	if a != b || a == c {
		t.Errorf("ids %s %s %s: want the first two equal and the third different", a, b, c)
	}
}
