package jobstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// A planning is the planner's first output for a plan or a probe result, kept in the amr_plans
// bucket (docs/pipeline.md): every spec under "spec.<specID>", then an index listing them
// (PlannedSpecs) under "plan.<planID>" or "probe.<probe specID>", created once. Specs are written
// before the index and published after it, so the index never names a spec that is not stored,
// and nothing is published that a redelivery would not publish again.

// Planning is one stored planning output.
type Planning struct {
	// Key is the index key: PlanIndex or ProbeIndex.
	Key   string
	Index *amrpipev1.PlannedSpecs
	Specs []*amrpipev1.JobSpec
	rev   uint64
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

// PlanIndex is the index key of a plan's planning.
func PlanIndex(planID string) string { return "plan." + keyToken(planID) }

// ProbeIndex is the index key of the planning of a probe job's result.
func ProbeIndex(specID string) string { return "probe." + keyToken(specID) }

func specKey(specID string) string { return "spec." + keyToken(specID) }

func errPlans(op, key string, err error) error {
	return fmt.Errorf("%s %s in amr_plans: %w", op, key, err)
}

// Planning returns the planning stored under index, or nil when there is none.
func (s *Store) Planning(ctx context.Context, index string) (*Planning, error) {
	e, err := s.plans.Get(ctx, index)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, errPlans("get", index, err)
	}
	out := &Planning{Key: index, Index: &amrpipev1.PlannedSpecs{}, rev: e.Revision()}
	if err := proto.Unmarshal(e.Value(), out.Index); err != nil {
		return nil, errPlans("decode", index, err)
	}
	for _, id := range out.Index.GetSpecIds() {
		spec := &amrpipev1.JobSpec{}
		if _, err := getProto(ctx, s.plans, specKey(id), spec); err != nil {
			return nil, errPlans("get", specKey(id), err)
		}
		out.Specs = append(out.Specs, spec)
	}
	return out, nil
}

// SavePlanning stores specs and then their index, unless another delivery stored an index
// first; it returns the planning that won.
func (s *Store) SavePlanning(ctx context.Context, index, planID string, specs []*amrpipev1.JobSpec) (*Planning, error) {
	idx := &amrpipev1.PlannedSpecs{PlanId: planID, Planned: timestamppb.New(s.now())}
	for _, spec := range specs {
		data, err := proto.Marshal(spec)
		if err != nil {
			return nil, errPlans("encode", specKey(spec.GetSpecId()), err)
		}
		// A spec of this id stored by an earlier, unfinished delivery differs at most in its
		// size estimate: keep it.
		if _, err := s.plans.Create(ctx, specKey(spec.GetSpecId()), data); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, errPlans("put", specKey(spec.GetSpecId()), err)
		}
		idx.SpecIds = append(idx.SpecIds, spec.GetSpecId())
	}
	return s.createIndex(ctx, index, idx, specs)
}

// FailPlanning records that a planning was dead-lettered, with the reason, unless a planning
// was stored under index already (then the planning stands).
func (s *Store) FailPlanning(ctx context.Context, index, planID, reason string) error {
	_, err := s.createIndex(ctx, index, &amrpipev1.PlannedSpecs{PlanId: planID, Planned: timestamppb.New(s.now()), Failed: reason}, nil)
	return err
}

func (s *Store) createIndex(ctx context.Context, index string, idx *amrpipev1.PlannedSpecs, specs []*amrpipev1.JobSpec) (*Planning, error) {
	data, err := proto.Marshal(idx)
	if err != nil {
		return nil, errPlans("encode", index, err)
	}
	rev, err := s.plans.Create(ctx, index, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		won, lerr := s.Planning(ctx, index)
		if lerr == nil && won == nil {
			lerr = errPlans("get", index, errors.New("index vanished"))
		}
		return won, lerr
	}
	if err != nil {
		return nil, errPlans("create", index, err)
	}
	return &Planning{Key: index, Index: idx, rev: rev, Specs: specs}, nil
}

// MarkPublished records that every spec of a planning was published.
func (s *Store) MarkPublished(ctx context.Context, index string, p *Planning) error {
	idx := proto.Clone(p.Index).(*amrpipev1.PlannedSpecs)
	idx.Published = true
	data, err := proto.Marshal(idx)
	if err != nil {
		return errPlans("encode", index, err)
	}
	// A conflict means another delivery marked it (nothing else updates an index).
	if _, err := s.plans.Update(ctx, index, data, p.rev); err != nil && !errors.Is(err, jetstream.ErrKeyExists) &&
		!errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return errPlans("update", index, err)
	}
	return nil
}

// plannings returns every planning index of a plan: the plan's and its probe results'.
func (s *Store) plannings(ctx context.Context, planID string) ([]*Planning, error) {
	lister, err := s.plans.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list amr_plans: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		if k == PlanIndex(planID) || strings.HasPrefix(k, "probe.") {
			keys = append(keys, k)
		}
	}
	var out []*Planning
	for _, k := range keys {
		p, err := s.Planning(ctx, k)
		if err != nil {
			return nil, err
		}
		if p != nil && p.Index.GetPlanId() == planID {
			out = append(out, p)
		}
	}
	return out, nil
}

// Submission returns what the submitter made of a spec, or nil when nothing is stored yet.
func (s *Store) Submission(ctx context.Context, specID string) (*amrpipev1.Submission, error) {
	sub := &amrpipev1.Submission{}
	_, err := getProto(ctx, s.submissions, specID, sub)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("submission of spec %s: %w", specID, err)
	}
	return sub, nil
}

// PutSubmission stores a spec's outcome once: when another delivery stored one first, that one
// is returned (and stands). A claim stored before is replaced by the outcome, its attempts and
// orphans kept.
func (s *Store) PutSubmission(ctx context.Context, specID string, sub *amrpipev1.Submission) (*amrpipev1.Submission, error) {
	return s.UpdateSubmission(ctx, specID, func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
		if HasOutcome(cur) {
			return nil, ErrNoChange
		}
		return withOutcome(cur, sub), nil
	})
}

// PlanIDs returns the id of every plan the planner planned or dead-lettered (amr_plans
// "plan.<id>" indexes; re-plans included), sorted.
func (s *Store) PlanIDs(ctx context.Context) ([]string, error) {
	lister, err := s.plans.ListKeysFiltered(ctx, "plan.*")
	if err != nil {
		return nil, fmt.Errorf("list amr_plans: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	var ids []string
	for _, k := range keys {
		idx := &amrpipev1.PlannedSpecs{}
		if _, err := getProto(ctx, s.plans, k, idx); errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, errPlans("get", k, err)
		}
		ids = append(ids, idx.GetPlanId())
	}
	slices.Sort(ids)
	return ids, nil
}
