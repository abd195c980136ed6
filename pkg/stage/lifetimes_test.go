package stage_test

import (
	"testing"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sizing"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// TestLifetimesAgreeWithSharePointsSide: pkg/pipeline/topology cannot import pkg/sharepoint, so
// it keeps its own copies of the SharePoint figures its lifetimes derive from; here, where both
// sides meet, they must agree.
func TestLifetimesAgreeWithSharePointsSide(t *testing.T) {
	if topology.ChangeLogWindow != sizing.DefaultTokenMaxAge {
		t.Errorf("topology.ChangeLogWindow %s, sizing.DefaultTokenMaxAge %s", topology.ChangeLogWindow, sizing.DefaultTokenMaxAge)
	}
	if topology.MaxRetryAfter != spo.DefaultMaxRetryAfter {
		t.Errorf("topology.MaxRetryAfter %s, spo.DefaultMaxRetryAfter %s", topology.MaxRetryAfter, spo.DefaultMaxRetryAfter)
	}
	if topology.ThrottleTTL < spo.DefaultMaxRetryAfter {
		t.Errorf("amr_throttle forgets a pause after %s, before the longest Retry-After honoured (%s)", topology.ThrottleTTL, spo.DefaultMaxRetryAfter)
	}
}
