package parser

import (
	"bytes"
	"context"
	"testing"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestDeletedObjectsArePublished: an incremental job reports a deleted object as an SPObject with
// IsDeleted="true" and no child element (the simulator's export writes it so, see its golden
// Manifest.xml). Downstream must learn of the deletion, so the parser must publish a record for
// it. This fails while pkg/sharepoint/manifest yields no record for an SPObject without a child (reported to
// its owner); the parser's policy already handles such a record (by its SPObject URL).
func TestDeletedObjectsArePublished(t *testing.T) {
	const doc = `<?xml version="1.0" encoding="utf-8"?>
<SPObjects xmlns="urn:deployment-manifest-schema">
  <SPObject Id="5d0c8a4e-1111-4aaa-8bbb-000000000004" ObjectType="SPFile" ParentId="2aba6aee-eb13-4379-b374-8fddc71e7d1a" IsDeleted="true" ParentWebId="7206fc09-e4af-48b3-8730-ed7321396d7a" ParentWebUrl="/sites/hr" Url="/sites/hr/Docs/gone.txt" />
</SPObjects>`
	spec := &amrpipev1.JobSpec{WebUrl: web, Urls: []string{web + "/Docs"}, Emit: amrpipev1.Emit_EMIT_ALL, StartChangeToken: "1;3;x;1;1"}
	s := &sink{}
	out, err := parseAndPublish(context.Background(), bytes.NewReader([]byte(doc)), newPolicy(spec), nil,
		framing{jobID: "job", file: "Manifest.xml", size: 16, maxBytes: 1 << 20}, nil, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range s.batches {
		for _, r := range b.GetRecords() {
			if r.GetSpObject().GetIsDeleted() && r.GetObjectId() == "5d0c8a4e-1111-4aaa-8bbb-000000000004" {
				return
			}
		}
	}
	t.Errorf("the deletion of /sites/hr/Docs/gone.txt was not published (%d records parsed): pkg/sharepoint/manifest drops SPObjects without a child element", out.parsed)
}
