// Package changes publishes an inventory pass's change set (pkg/inventory) on
// amr.changes.<tenant>.<passID> (stream AMR_CHANGES), for incremental migration engines that
// subscribe rather than query.
package changes

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// PartSize is the most changes of one message: about 150 KB, well under the 1 MiB payload limit
// whatever the URLs.
const PartSize = 1000

// Publish publishes cs, a pass's own change set (inventory.Store.Changes against the pass's base,
// not one composed over several passes, which would take its subject), in parts of at most
// PartSize changes, in the change set's order, and returns the number of parts. Each part's message id is <subject>/<part>, so publishing the same
// change set again within the stream's duplicate window stores nothing twice, and a consumer
// keyed on (tenant, to_pass, part) is idempotent beyond it.
func Publish(ctx context.Context, js jetstream.JetStream, cs *inventory.ChangeSet) (int, error) {
	subject := topology.ChangesSubject(cs.Tenant, cs.To)
	parts := max(1, (len(cs.Changes)+PartSize-1)/PartSize)
	for p := range parts {
		chunk := cs.Changes[min(p*PartSize, len(cs.Changes)):min((p+1)*PartSize, len(cs.Changes))]
		m := &amrpipev1.ChangeSetPart{Tenant: cs.Tenant, FromPass: cs.From, ToPass: cs.To, Part: uint32(p), Parts: uint32(parts)}
		for _, c := range chunk {
			m.Changes = append(m.Changes, &amrpipev1.ObjectChange{Kind: string(c.Kind), ObjectType: c.ObjectType, ObjectId: c.ObjectID,
				Url: c.URL, PrevUrl: c.PrevURL, Fields: c.Fields})
		}
		if _, err := bus.Publish(ctx, js, subject, m, subject+"/"+strconv.Itoa(p)); err != nil {
			return p, fmt.Errorf("publish change set of pass %d, part %d of %d: %w", cs.To, p, parts, err)
		}
	}
	return parts, nil
}

// FromParts reassembles a change set from all its parts (in any order); it fails unless they are
// one complete change set.
func FromParts(parts []*amrpipev1.ChangeSetPart) (*inventory.ChangeSet, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("change set: no parts")
	}
	first := parts[0]
	byPart := make([]*amrpipev1.ChangeSetPart, first.GetParts())
	for _, p := range parts {
		if p.GetTenant() != first.GetTenant() || p.GetToPass() != first.GetToPass() || p.GetFromPass() != first.GetFromPass() || p.GetParts() != first.GetParts() {
			return nil, fmt.Errorf("change set: part %d of %s pass %d does not belong with part %d of %s pass %d",
				p.GetPart(), p.GetTenant(), p.GetToPass(), first.GetPart(), first.GetTenant(), first.GetToPass())
		}
		if p.GetPart() >= p.GetParts() {
			return nil, fmt.Errorf("change set: part %d of %d", p.GetPart(), p.GetParts())
		}
		byPart[p.GetPart()] = p
	}
	cs := &inventory.ChangeSet{Tenant: first.GetTenant(), From: first.GetFromPass(), To: first.GetToPass(), Changes: []inventory.Change{}}
	var missing []string
	for i, p := range byPart {
		if p == nil {
			missing = append(missing, strconv.Itoa(i))
			continue
		}
		for _, c := range p.GetChanges() {
			cs.Changes = append(cs.Changes, inventory.Change{Kind: inventory.ChangeKind(c.GetKind()), ObjectType: c.GetObjectType(),
				ObjectID: c.GetObjectId(), URL: c.GetUrl(), PrevURL: c.GetPrevUrl(), Fields: c.GetFields()})
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("change set of %s pass %d: parts %s of %d missing", cs.Tenant, cs.To, strings.Join(missing, ", "), len(byPart))
	}
	return cs, nil
}
