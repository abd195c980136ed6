package tenant

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func smallDestination(t *testing.T, seed int64) *Tenant {
	t.Helper()
	d, err := NewDestination(SmallProfile(), DestinationSpec{Sites: map[string]string{"/sites/small": "/sites/small-new"}, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDestinationSeedsEveryKindDeterministically: two differences of every kind, the same ones for
// the same seed, other ones for another seed; each names a source URL that exists at the source and
// a destination URL that exists at the destination (none for a missing item, which is gone there).
func TestDestinationSeedsEveryKindDeterministically(t *testing.T) {
	src, err := New(SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	d := smallDestination(t, 7)
	diffs := d.Seeded()
	if len(diffs) != 2*len(DifferenceKinds) {
		t.Fatalf("%d differences, want %d: %+v", len(diffs), 2*len(DifferenceKinds), diffs)
	}
	if again := smallDestination(t, 7).Seeded(); !reflect.DeepEqual(again, diffs) {
		t.Fatalf("same seed, other differences:\n%+v\n%+v", again, diffs)
	}
	if other := smallDestination(t, 8).Seeded(); reflect.DeepEqual(other, diffs) {
		t.Fatal("another seed seeded the same differences")
	}
	kinds := map[DifferenceKind]int{}
	for _, df := range diffs {
		kinds[df.Kind]++
		if !strings.HasPrefix(df.SourceURL, "/sites/small/") {
			t.Errorf("%+v: source URL outside the source site", df)
		}
		if _, err := src.Resolve(df.SourceURL); !errors.Is(err, ErrNotContainer) {
			t.Errorf("%+v: the source's item does not resolve: %v", df, err)
		}
		_, err := d.Resolve(strings.Replace(df.SourceURL, "/sites/small/", "/sites/small-new/", 1))
		switch df.Kind {
		case DiffMissing, DiffRenamed:
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%+v: still at its old URL at the destination: %v", df, err)
			}
		default:
			if !errors.Is(err, ErrNotContainer) {
				t.Errorf("%+v: not at the destination: %v", df, err)
			}
		}
		if df.Kind == DiffRenamed {
			if _, err := d.Resolve(df.DestinationURL); !errors.Is(err, ErrNotContainer) {
				t.Errorf("%+v: the renamed file does not resolve: %v", df, err)
			}
		}
	}
	for _, k := range DifferenceKinds {
		if kinds[k] != 2 {
			t.Errorf("%d differences of kind %s, want 2", kinds[k], k)
		}
	}
}

// TestDestinationCopiesUnderNewURLsWithMappedLogins: the destination has the source's lists under
// the new site URL, and every source login maps to a destination login in the other domain.
func TestDestinationCopiesUnderNewURLsWithMappedLogins(t *testing.T) {
	d := smallDestination(t, 1)
	if got := d.Sites(); len(got) != 1 || got[0].ServerRelativeURL != "/sites/small-new" {
		t.Fatalf("sites %+v", got)
	}
	src, _ := New(SmallProfile())
	sl, err := src.Lists("/sites/small")
	if err != nil {
		t.Fatal(err)
	}
	dl, err := d.Lists("/sites/small-new")
	if err != nil {
		t.Fatal(err)
	}
	if len(sl) != len(dl) {
		t.Fatalf("%d lists, want %d", len(dl), len(sl))
	}
	for i := range sl {
		if dl[i].Title != sl[i].Title || dl[i].RootFolderURL != strings.Replace(sl[i].RootFolderURL, "/sites/small", "/sites/small-new", 1) {
			t.Errorf("list %+v, source %+v", dl[i], sl[i])
		}
	}
	logins := d.LoginMap()
	if len(logins) != 12 {
		t.Fatalf("%d logins mapped, want the 12 users", len(logins))
	}
	for s, dst := range logins {
		if !strings.HasSuffix(s, "@"+DefaultLoginDomain) || !strings.HasSuffix(dst, "@"+DefaultDestinationLoginDomain) ||
			strings.TrimSuffix(s, DefaultLoginDomain) != strings.TrimSuffix(dst, DefaultDestinationLoginDomain) {
			t.Errorf("login %s maps to %s", s, dst)
		}
	}
}

func TestDestinationRefusesBadSpecs(t *testing.T) {
	for name, tc := range map[string]struct {
		spec DestinationSpec
		want string
	}{
		"no mapping":   {DestinationSpec{}, "no site mapping"},
		"unknown site": {DestinationSpec{Sites: map[string]string{"/sites/nope": "/sites/x"}}, "/sites/nope is not in the source profile"},
		"relative":     {DestinationSpec{Sites: map[string]string{"/sites/small": "sites/x"}}, "want a server-relative URL"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewDestination(SmallProfile(), tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
