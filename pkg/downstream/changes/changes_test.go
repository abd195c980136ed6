package changes_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/downstream/changes"
	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestPublishedChangeSetReadsBackWhole publishes change sets of several sizes (none, one part,
// several parts) twice each and reads them back from AMR_CHANGES: each is stored once, in parts
// no larger than PartSize, and reassembles into the change set published.
func TestPublishedChangeSetReadsBackWhole(t *testing.T) {
	env := testenv.StartJetStream(t)
	ctx := context.Background()
	for pass, n := range map[int64]int{2: 0, 3: 7, 4: 2*changes.PartSize + 1} {
		cs := &inventory.ChangeSet{Tenant: "contoso.sharepoint.com", From: pass - 1, To: pass, Changes: []inventory.Change{}}
		for i := range n {
			c := inventory.Change{Kind: inventory.Changed, ObjectType: "SPFile", ObjectID: fmt.Sprintf("id-%d", i),
				URL: fmt.Sprintf("/sites/a/d/f%d.docx", i), Fields: []string{"size", "version"}}
			if i%3 == 0 {
				c.Kind, c.PrevURL, c.Fields = inventory.Moved, "/sites/a/d/old.docx", []string{"url", "name"}
			}
			cs.Changes = append(cs.Changes, c)
		}
		for range 2 {
			if _, err := changes.Publish(ctx, env.JS, cs); err != nil {
				t.Fatal(err)
			}
		}
		parts := testenv.Messages(t, ctx, env.JS, topology.StreamChanges, topology.ChangesSubject(cs.Tenant, pass),
			func() *amrpipev1.ChangeSetPart { return &amrpipev1.ChangeSetPart{} })
		if want := max(1, (n+changes.PartSize-1)/changes.PartSize); len(parts) != want {
			t.Fatalf("pass %d: %d parts stored, want %d", pass, len(parts), want)
		}
		for _, p := range parts {
			if len(p.GetChanges()) > changes.PartSize {
				t.Errorf("part of %d changes", len(p.GetChanges()))
			}
		}
		got, err := changes.FromParts(parts)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, cs) {
			t.Errorf("pass %d: read back %+v, published %+v", pass, got.Changes[:min(2, len(got.Changes))], cs.Changes[:min(2, len(cs.Changes))])
		}
		if _, err := changes.FromParts(parts[1:]); len(parts) > 1 && err == nil {
			t.Errorf("pass %d: a change set missing its first part reassembled", pass)
		}
	}
}
