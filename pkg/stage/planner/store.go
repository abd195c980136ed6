package planner

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// planStore keeps the planner's first output per plan and probe result in the amr_plans bucket
// (docs/pipeline.md): every spec under "spec.<specID>", then an index listing them, created once.
// Specs are written before the index and published after it, so the index never names a spec
// that is not stored, and nothing is published that a redelivery would not publish again.
type planStore struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// stored is one planning output.
type stored struct {
	index *amrpipev1.PlannedSpecs
	rev   uint64
	specs []*amrpipev1.JobSpec
}

var plainKey = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)

// keyToken makes an id usable in a bucket key: as it is when it holds only letters, digits, '-'
// and '_', else base64url with a "b64=" prefix (keys allow few characters, plan ids more).
func keyToken(id string) string {
	if plainKey.MatchString(id) {
		return id
	}
	return "b64=" + base64.RawURLEncoding.EncodeToString([]byte(id))
}

func planIndex(planID string) string  { return "plan." + keyToken(planID) }
func probeIndex(specID string) string { return "probe." + keyToken(specID) }
func specKey(specID string) string    { return "spec." + keyToken(specID) }
func errStore(op, key string, err error) error {
	return fmt.Errorf("%s %s in amr_plans: %w", op, key, err)
}

// load returns the output stored under index, or nil when there is none.
func (st planStore) load(ctx context.Context, index string) (*stored, error) {
	e, err := st.kv.Get(ctx, index)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, errStore("get", index, err)
	}
	out := &stored{index: &amrpipev1.PlannedSpecs{}, rev: e.Revision()}
	if err := proto.Unmarshal(e.Value(), out.index); err != nil {
		return nil, errStore("decode", index, err)
	}
	for _, id := range out.index.GetSpecIds() {
		s := &amrpipev1.JobSpec{}
		e, err := st.kv.Get(ctx, specKey(id))
		if err != nil {
			return nil, errStore("get", specKey(id), err)
		}
		if err := proto.Unmarshal(e.Value(), s); err != nil {
			return nil, errStore("decode", specKey(id), err)
		}
		out.specs = append(out.specs, s)
	}
	return out, nil
}

// save stores specs and then their index, unless another delivery stored an index first; it
// returns the output that won.
func (st planStore) save(ctx context.Context, index, planID string, specs []*amrpipev1.JobSpec) (*stored, error) {
	idx := &amrpipev1.PlannedSpecs{PlanId: planID, Planned: timestamppb.New(st.now())}
	for _, s := range specs {
		data, err := proto.Marshal(s)
		if err != nil {
			return nil, errStore("encode", specKey(s.GetSpecId()), err)
		}
		// A spec of this id stored by an earlier, unfinished delivery differs at most in its
		// size estimate: keep it.
		if _, err := st.kv.Create(ctx, specKey(s.GetSpecId()), data); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, errStore("put", specKey(s.GetSpecId()), err)
		}
		idx.SpecIds = append(idx.SpecIds, s.GetSpecId())
	}
	data, err := proto.Marshal(idx)
	if err != nil {
		return nil, errStore("encode", index, err)
	}
	rev, err := st.kv.Create(ctx, index, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		won, lerr := st.load(ctx, index)
		if lerr == nil && won == nil {
			lerr = errStore("get", index, errors.New("index vanished"))
		}
		return won, lerr
	}
	if err != nil {
		return nil, errStore("create", index, err)
	}
	return &stored{index: idx, rev: rev, specs: specs}, nil
}

// markPublished records that every spec of the output was published.
func (st planStore) markPublished(ctx context.Context, index string, s *stored) error {
	idx := proto.Clone(s.index).(*amrpipev1.PlannedSpecs)
	idx.Published = true
	data, err := proto.Marshal(idx)
	if err != nil {
		return errStore("encode", index, err)
	}
	// A conflict means another delivery marked it (nothing else updates an index).
	if _, err := st.kv.Update(ctx, index, data, s.rev); err != nil && !errors.Is(err, jetstream.ErrKeyExists) &&
		!errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return errStore("update", index, err)
	}
	return nil
}
