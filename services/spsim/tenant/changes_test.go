package tenant

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChangeTokenWalkYieldsExactlyTheChanges mutates the tenant and checks that a walk from the
// token taken before yields each changed object once, in its final state, and nothing else.
func TestChangeTokenWalkYieldsExactlyTheChanges(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	urls := []string{
		"/sites/small/Shared Documents", "/sites/small/Lists/Tasks", "/sites/small/team/Notes",
		"/sites/small/Shared Documents/Big", "/sites/small/Shared Documents/Team-0002",
	}
	tokens := map[string]string{}
	for _, u := range urls {
		tokens[u] = tn.CurrentChangeToken(resolve(t, tn, u))
	}
	changes := tn.Mutate(300)
	if len(changes) != 300 {
		t.Fatalf("Mutate(300) made %d changes", len(changes))
	}
	kinds := map[ChangeKind]int{}
	for _, c := range changes {
		kinds[c.Kind]++
	}
	if kinds[ChangeAdd] == 0 || kinds[ChangeUpdate] == 0 || kinds[ChangeDelete] == 0 {
		t.Errorf("change kinds %v, want adds, updates and deletes", kinds)
	}
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			target := resolve(t, tn, u)
			want := map[string]Change{} // object id -> its last change
			for _, c := range changes {
				if c.ListID == target.ListID && strings.HasPrefix(strings.ToLower(c.ServerRelativeURL), strings.ToLower(u)+"/") {
					want[c.ObjectID] = c
				}
			}
			opts := ReadOptions{StartChangeToken: tokens[u]}
			objs := collect(t, tn, opts, u)
			got := map[string]*Object{}
			for _, o := range objs {
				if o.Type == TypeListItem && o.DocType == "File" {
					continue // a file's list item follows its SPFile
				}
				if got[o.ID] != nil {
					t.Errorf("%s yielded twice", o.ServerURL)
				}
				got[o.ID] = o
			}
			if len(got) != len(want) {
				t.Errorf("walk from the token yields %d changed objects, want %d", len(got), len(want))
			}
			for id, c := range want {
				o := got[id]
				switch {
				case o == nil:
					t.Errorf("%s change %d of %s not yielded", c.Kind, c.Number, c.ServerRelativeURL)
				case o.IsDeleted != (c.Kind == ChangeDelete):
					t.Errorf("%s: IsDeleted %v after a %s", o.ServerURL, o.IsDeleted, c.Kind)
				case !o.Modified.Equal(c.Time) && c.Kind != ChangeDelete:
					t.Errorf("%s: modified %v, its last change was at %v", o.ServerURL, o.Modified, c.Time)
				case o.ServerURL != c.ServerRelativeURL:
					t.Errorf("object %s: URL %s, the change says %s", id, o.ServerURL, c.ServerRelativeURL)
				}
			}
			if n, err := tn.Count(context.Background(), []Target{target}, opts); err != nil || n != int64(len(objs)) {
				t.Errorf("Count with the token = %d, %v; Walk yielded %d", n, err, len(objs))
			}
			if n := len(collect(t, tn, ReadOptions{StartChangeToken: tn.CurrentChangeToken(target)}, u)); n != 0 {
				t.Errorf("walk from the current token yields %d objects, want none", n)
			}
		})
	}
}

// TestMutationsKeepTotalsConsistent checks full walks after changes: Count agrees, folder totals
// match the objects, deleted objects are gone and added ones present.
func TestMutationsKeepTotalsConsistent(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	changes := tn.Mutate(400)
	live := map[string]bool{}
	for _, c := range changes {
		live[c.ServerRelativeURL] = c.Kind != ChangeDelete
	}
	for _, l := range allLists(t, tn) {
		countWalk(t, tn, l.RootFolderURL, ReadOptions{})
		countWalk(t, tn, l.RootFolderURL, ReadOptions{IncludeDirectDescendantsOnly: true})
		objs := collect(t, tn, ReadOptions{IncludeVersions: true}, l.RootFolderURL)
		folders := checkTotals(t, objs)
		seen := map[string]bool{}
		for _, o := range objs {
			seen[o.ServerURL] = true
		}
		for u, alive := range live {
			if strings.HasPrefix(u, l.RootFolderURL+"/") && seen[u] != alive {
				t.Errorf("%s: present %v after its changes, want %v", u, seen[u], alive)
			}
		}
		if got := int(objs[0].SMTotalFileCount + folders); got != l.ItemCount {
			t.Errorf("%s: Lists() ItemCount %d, the walk holds %d items", l.Title, l.ItemCount, got)
		}
	}
	for u, alive := range live {
		_, err := tn.Resolve(u)
		if alive != errors.Is(err, ErrNotContainer) || !alive && !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%s) = %v; alive %v", u, err, alive)
		}
	}
}

func TestUpdateAddsAVersion(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	for _, c := range tn.Mutate(200) {
		if c.Kind != ChangeUpdate || c.ObjectType != TypeFile {
			continue
		}
		// The walk before the change is not available any more, so compare with a fresh tenant.
		fresh := newTenant(t, SmallProfile())
		before := findObject(t, fresh, c.ServerRelativeURL, ReadOptions{IncludeVersions: true})
		after := findObject(t, tn, c.ServerRelativeURL, ReadOptions{IncludeVersions: true})
		if labelOrder(t, after.Version) <= labelOrder(t, before.Version) || after.ID != before.ID || !after.Modified.Equal(c.Time) {
			t.Errorf("%s: version %s -> %s, modified %v -> %v; want a later version at %v", c.ServerRelativeURL, before.Version, after.Version, before.Modified, after.Modified, c.Time)
		}
		return
	}
	t.Fatal("no file update among 200 changes")
}

func findObject(t *testing.T, tn *Tenant, url string, opts ReadOptions) *Object {
	t.Helper()
	opts.IncludeDirectDescendantsOnly = true
	for _, o := range collect(t, tn, opts, url[:strings.LastIndexByte(url, '/')]) {
		if o.ServerURL == url && o.Type != TypeListItem || o.ServerURL == url && o.DocType == "" {
			return o
		}
	}
	t.Fatalf("%s not found", url)
	return nil
}

func TestMutateIsDeterministic(t *testing.T) {
	a, b := newTenant(t, SmallProfile()), newTenant(t, SmallProfile())
	for range 3 {
		ca, cb := a.Mutate(50), b.Mutate(50)
		if !reflect.DeepEqual(ca, cb) {
			t.Fatal("two tenants from the same profile make different changes")
		}
		a.Advance(time.Hour)
		b.Advance(time.Hour)
	}
	if !a.Now().Equal(b.Now()) || !a.Now().Equal(DefaultEpoch.Add(3*time.Hour+150*time.Second)) {
		t.Errorf("clocks %v and %v, want epoch + 3h + 150 changes x 1s", a.Now(), b.Now())
	}
}

func TestChangeTokenExpiresAfter60Days(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	target := resolve(t, tn, "/sites/small/Lists/Tasks")
	token := tn.CurrentChangeToken(target)
	tn.Advance(60*24*time.Hour - time.Second)
	if _, err := tn.Count(context.Background(), []Target{target}, ReadOptions{StartChangeToken: token}); err != nil {
		t.Fatalf("a token just under 60 days old: %v", err)
	}
	tn.Advance(24 * time.Hour)
	if _, err := tn.Count(context.Background(), []Target{target}, ReadOptions{StartChangeToken: token}); !errors.Is(err, ErrChangeTokenExpired) {
		t.Errorf("a 61-day-old token: %v, want ErrChangeTokenExpired", err)
	}
}

func TestChangeTokenErrors(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	target := resolve(t, tn, "/sites/small/Shared Documents")
	old := tn.CurrentChangeToken(target)
	tn.Mutate(5)
	tn.Advance(59 * 24 * time.Hour)
	recent := tn.CurrentChangeToken(target)
	tn.Mutate(5)
	if _, err := tn.Count(context.Background(), []Target{target}, ReadOptions{StartChangeToken: old}); err != nil {
		t.Fatalf("a 59-day-old token: %v", err)
	}
	tn.Advance(2 * 24 * time.Hour) // the first five changes and the old token are now 61 days old

	parts := strings.Split(tn.CurrentChangeToken(target), ";")
	withNumber := func(n int64) string {
		return strings.Join(append(parts[:4:4], strconv.FormatInt(n, 10)), ";")
	}
	tests := []struct {
		name, token string
		want        error
	}{
		{"older than 60 days", old, ErrChangeTokenExpired},
		{"change number no longer retained", withNumber(firstChangeNumber), ErrChangeTokenExpired},
		{"change number from the future", withNumber(1 << 40), ErrChangeTokenExpired},
		{"garbage", "not a token", ErrBadChangeToken},
		{"bad guid", "1;3;nope;638000000000000000;1001", ErrBadChangeToken},
		{"wrong version", strings.Replace(recent, "1;3;", "2;3;", 1), ErrBadChangeToken},
		{"non-numeric change", strings.Join(append(parts[:4:4], "x"), ";"), ErrBadChangeToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yielded := false
			err := tn.Walk(context.Background(), []Target{target}, ReadOptions{StartChangeToken: tt.token}, func(*Object) error {
				yielded = true
				return nil
			})
			if !errors.Is(err, tt.want) || yielded {
				t.Errorf("Walk = %v (yielded %v), want %v before any object", err, yielded, tt.want)
			}
		})
	}
	if _, err := tn.Count(context.Background(), []Target{target}, ReadOptions{StartChangeToken: recent}); err != nil {
		t.Errorf("a 2-day-old token with retained changes: %v", err)
	}
}

// TestWalkWhileMutating runs walks concurrently with mutations (run with -race): each walk must
// see one consistent snapshot, so its folder totals match its own objects.
func TestWalkWhileMutating(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	token := tn.CurrentChangeToken(resolve(t, tn, "/sites/small/Shared Documents"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 300 {
			tn.Mutate(2)
			tn.Advance(time.Minute)
			_ = tn.Now()
		}
	}()
	for walks := 0; ; walks++ {
		checkTotals(t, collect(t, tn, ReadOptions{}, "/sites/small/Shared Documents"))
		collect(t, tn, ReadOptions{StartChangeToken: token, IncludePermission: true}, "/sites/small/Shared Documents", "/sites/small/Lists/Tasks")
		if _, err := tn.Folder("/sites/small/Shared Documents/Big"); err != nil {
			t.Error(err)
		}
		select {
		case <-done:
			if walks < 1 {
				continue
			}
			return
		default:
		}
	}
}
