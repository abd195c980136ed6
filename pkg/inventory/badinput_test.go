package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/inventory"
)

func TestOpenRefusesAnUnknownScheme(t *testing.T) {
	for _, dsn := range []string{"mysql://root:secret@db/inv", "inv.db", "sqlite:", ""} {
		_, err := inventory.Open(context.Background(), dsn)
		var de *inventory.DSNError
		if !errors.As(err, &de) {
			t.Fatalf("Open(%q) = %v, want a *DSNError", dsn, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// TestChangesRefusesBadArguments: each bad request is a typed error naming what is wrong, never a
// change set.
func TestChangesRefusesBadArguments(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *inventory.Store) {
		ctx := context.Background()
		var scopePass func(tenant, scope string, complete bool) int64
		if _, err := s.Changes(ctx, 0, 0); !errors.Is(err, inventory.ErrNoPass) {
			t.Errorf("empty inventory: %v, want ErrNoPass", err)
		}
		if _, err := s.BeginPass(ctx, inventory.PassInfo{Kind: inventory.Full}); !isArg(err, "tenant") {
			t.Errorf("no tenant: %v", err)
		}
		if _, err := s.BeginPass(ctx, inventory.PassInfo{Tenant: "a", Kind: "partial"}); !isArg(err, "kind") {
			t.Errorf("bad kind: %v", err)
		}
		pass := func(tenant string, complete bool) int64 { return scopePass(tenant, "s", complete) }
		scopePass = func(tenant, scope string, complete bool) int64 {
			p, err := s.BeginPass(ctx, inventory.PassInfo{Tenant: tenant, Scope: scope, Kind: inventory.Full})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Ingest(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if err := p.End(ctx, complete); err != nil {
				t.Fatal(err)
			}
			if err := p.End(ctx, complete); !errors.Is(err, inventory.ErrPassEnded) {
				t.Errorf("second End: %v", err)
			}
			if err := p.Ingest(ctx, nil); !errors.Is(err, inventory.ErrPassEnded) {
				t.Errorf("Ingest after End: %v", err)
			}
			return p.Info().ID
		}
		a1, a2, a3 := pass("a.sharepoint.com", true), pass("a.sharepoint.com", true), pass("a.sharepoint.com", false)
		if _, err := s.Changes(ctx, 0, a1); !isArg(err, "to") {
			t.Errorf("first pass: %v", err)
		}
		b1 := pass("b.sharepoint.com", true)

		var tm *inventory.TenantMismatchError
		if _, err := s.Changes(ctx, b1, a2); !errors.As(err, &tm) || !strings.Contains(err.Error(), "b.sharepoint.com") {
			t.Errorf("across tenants: %v, want a *TenantMismatchError naming both", err)
		}
		var up *inventory.UnknownPassError
		if _, err := s.Changes(ctx, 0, 99); !errors.As(err, &up) || up.ID != 99 {
			t.Errorf("unknown to: %v", err)
		}
		if _, err := s.Changes(ctx, 98, a2); !errors.As(err, &up) || up.ID != 98 {
			t.Errorf("unknown from: %v", err)
		}
		if _, err := s.Changes(ctx, 0, a3); !errors.Is(err, inventory.ErrIncompletePass) {
			t.Errorf("incomplete pass: %v", err)
		}
		if _, err := s.Changes(ctx, a1, a3+1); !errors.As(err, &tm) {
			t.Errorf("across tenants (b's pass is the latest): %v", err)
		}
		if cs, err := s.Changes(ctx, a1, a2); err != nil || cs.From != a1 || cs.To != a2 {
			t.Errorf("consecutive passes: %v %+v", err, cs)
		}
		if _, err := s.Changes(ctx, a1, a3); !errors.Is(err, inventory.ErrIncompletePass) {
			t.Errorf("to did not end complete: %v", err)
		}

		// A from further back than to's base: the passes in between must have ended complete, and
		// from must be an earlier pass of to's tenant and scope.
		a4 := pass("a.sharepoint.com", true)
		other := scopePass("a.sharepoint.com", "t", true)
		if cs, err := s.Changes(ctx, a3, a4); err != nil || cs.From != a3 {
			t.Errorf("to's base ended incomplete, to did not: %v %+v", err, cs)
		}
		for _, c := range []struct {
			name     string
			from, to int64
			arg      string // the *ArgError's argument, or "" for ErrIncompletePass naming want
			want     string
		}{
			{"a pass in between did not end complete", a1, a4, "", fmt.Sprintf("pass %d in between did not end complete", a3)},
			{"from of another scope", other, a4, "from", `scope "t"`},
			{"from later than to", a2, a1, "from", fmt.Sprintf("pass %d is not earlier than pass %d", a2, a1)},
			{"from is to", a2, a2, "from", "not earlier"},
			{"to of another scope than from", a1, other, "from", `scope "s"`},
		} {
			_, err := s.Changes(ctx, c.from, c.to)
			switch {
			case c.arg == "" && (!errors.Is(err, inventory.ErrIncompletePass) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%s: %v, want ErrIncompletePass saying %q", c.name, err, c.want)
			case c.arg != "" && (!isArg(err, c.arg) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%s: %v, want an *ArgError naming %s and saying %q", c.name, err, c.arg, c.want)
			}
		}
	})
}

func isArg(err error, name string) bool {
	var ae *inventory.ArgError
	return errors.As(err, &ae) && ae.Arg == name
}
