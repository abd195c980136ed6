package planner

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

var emitToProto = map[sizing.Emit]amrpipev1.Emit{
	sizing.EmitAll:          amrpipev1.Emit_EMIT_ALL,
	sizing.EmitProbe:        amrpipev1.Emit_EMIT_PROBE,
	sizing.EmitSecurityOnly: amrpipev1.Emit_EMIT_SECURITY_ONLY,
}

// SpecToProto is the JobSpec message of a planned job; tenant labels it for metrics and throttling.
func SpecToProto(j sizing.JobSpec, tenant string) *amrpipev1.JobSpec {
	return &amrpipev1.JobSpec{
		SpecId:           j.ID,
		PlanId:           j.PlanID,
		SiteUrl:          j.SiteURL,
		WebUrl:           j.WebURL,
		Urls:             j.URLs,
		Multi:            j.Multi,
		Options:          OptionsToProto(j.Options),
		StartChangeToken: j.Options.StartChangeToken,
		Emit:             emitToProto[j.Emit],
		Probe:            j.Probe,
		ParentSpecId:     j.ParentJobID,
		ListIds:          j.ListIDs,
		ExpectedItems:    j.Items,
		Tenant:           tenant,
		EmitPrincipals:   j.EmitPrincipals,
		TokenListId:      j.TokenListID,
		Scope:            j.Scope,
		ListTokens:       listTokensToProto(j.ListTokens),
	}
}

func listTokensToProto(ts []sizing.ListToken) []*amrpipev1.ListToken {
	var out []*amrpipev1.ListToken
	for _, t := range ts {
		lt := &amrpipev1.ListToken{ListId: t.ListID, Token: t.Token, Scope: t.Scope}
		if !t.Read.IsZero() {
			lt.Read = timestamppb.New(t.Read)
		}
		out = append(out, lt)
	}
	return out
}

// SpecFromProto is the planner's JobSpec of a message (for Continue).
func SpecFromProto(p *amrpipev1.JobSpec) sizing.JobSpec {
	j := sizing.JobSpec{
		ID:             p.GetSpecId(),
		PlanID:         p.GetPlanId(),
		SiteURL:        p.GetSiteUrl(),
		WebURL:         p.GetWebUrl(),
		URLs:           p.GetUrls(),
		Multi:          p.GetMulti(),
		Options:        OptionsFromProto(p.GetOptions()),
		Probe:          p.GetProbe(),
		ParentJobID:    p.GetParentSpecId(),
		ListIDs:        p.GetListIds(),
		TokenListID:    p.GetTokenListId(),
		Scope:          p.GetScope(),
		Items:          p.GetExpectedItems(),
		EmitPrincipals: p.GetEmitPrincipals(),
	}
	for _, t := range p.GetListTokens() {
		lt := sizing.ListToken{ListID: t.GetListId(), Token: t.GetToken(), Scope: t.GetScope()}
		if t.GetRead() != nil {
			lt.Read = t.GetRead().AsTime()
		}
		j.ListTokens = append(j.ListTokens, lt)
	}
	j.Options.StartChangeToken = p.GetStartChangeToken()
	for e, pe := range emitToProto {
		if pe == p.GetEmit() {
			j.Emit = e
		}
	}
	return j
}

// OptionsToProto copies the read options; the change token travels in JobSpec.start_change_token.
func OptionsToProto(o spo.ReadOptions) *amrpipev1.ReadOptions {
	return &amrpipev1.ReadOptions{
		IncludeVersions:              o.IncludeVersions,
		IncludeSecurity:              o.IncludeSecurity,
		IncludePermission:            o.IncludePermission,
		IncludeDirectDescendantsOnly: o.IncludeDirectDescendantsOnly,
		IncludeExtendedMetadata:      o.IncludeExtendedMetadata,
	}
}

// OptionsFromProto is the inverse of OptionsToProto (nil reads nothing extra).
func OptionsFromProto(o *amrpipev1.ReadOptions) spo.ReadOptions {
	return spo.ReadOptions{
		IncludeVersions:              o.GetIncludeVersions(),
		IncludeSecurity:              o.GetIncludeSecurity(),
		IncludePermission:            o.GetIncludePermission(),
		IncludeDirectDescendantsOnly: o.GetIncludeDirectDescendantsOnly(),
		IncludeExtendedMetadata:      o.GetIncludeExtendedMetadata(),
	}
}

// Spec kinds, the "kind" label of the specs-published metric.
const (
	KindSecurity    = "security"
	KindProbe       = "probe"
	KindIncremental = "incremental"
	KindMulti       = "multi"
	KindSingle      = "single"
)

// SpecKind says what kind of job a spec is: security, probe, incremental, multi or single.
func SpecKind(s *amrpipev1.JobSpec) string {
	switch {
	case s.GetEmit() == amrpipev1.Emit_EMIT_SECURITY_ONLY:
		return KindSecurity
	case s.GetProbe():
		return KindProbe
	case s.GetStartChangeToken() != "":
		return KindIncremental
	case s.GetMulti():
		return KindMulti
	default:
		return KindSingle
	}
}
