package manifest_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
)

func TestDeletedObjectWithoutChildIsARecord(t *testing.T) {
	const doc = `<?xml version="1.0" encoding="utf-8"?>
<SPObjects xmlns="urn:deployment-manifest-schema">
  <SPObject Id="11111111-1111-4111-8111-111111111111" ObjectType="SPFile" ParentId="p" IsDeleted="true" Url="/sites/a/Docs/gone.txt" />
  <SPObject Id="22222222-2222-4222-8222-222222222222" ObjectType="SPListItem" ParentId="p" IsDeleted="true"></SPObject>
  <SPObject Id="33333333-3333-4333-8333-333333333333" ObjectType="SPFolder" ParentId="p" />
</SPObjects>`
	p := manifest.NewParser(strings.NewReader(doc), manifest.Options{JobID: "j", SourceFile: "Manifest.xml"})
	var got []string
	for {
		rec, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !rec.GetSpObject().GetIsDeleted() {
			t.Fatalf("record %s is not marked deleted", rec.GetObjectId())
		}
		got = append(got, rec.GetObjectType()+" "+rec.GetObjectId()[:8])
	}
	// The third SPObject is neither deleted nor described: nothing to report.
	want := []string{"SPFile 11111111", "SPListItem 22222222"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("records %v, want %v", got, want)
	}
}
