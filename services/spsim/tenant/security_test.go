package tenant

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

func TestSecurity(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	site := tn.Sites()[0]
	users, groups, roles := tn.Security(site.ID)
	if len(users) != 12+1 || len(groups) != 4 {
		t.Fatalf("%d users and %d groups, want 12 users plus the System Account and 4 groups", len(users), len(groups))
	}
	ids := map[int]bool{}
	for _, u := range users {
		if ids[u.ID] {
			t.Errorf("duplicate principal id %d", u.ID)
		}
		ids[u.ID] = true
		if _, err := base64.StdEncoding.DecodeString(u.SystemID); err != nil || u.SystemID == "" {
			t.Errorf("user %d: SystemId %q is not base64", u.ID, u.SystemID)
		}
		if u.ID != SystemAccountID && (!strings.HasPrefix(u.Login, "i:0#.f|membership|") || !strings.HasSuffix(u.Email, "@contoso.com") || !strings.HasSuffix(u.Login, u.Email)) {
			t.Errorf("user %d: login %q, email %q; want a claims login of the email", u.ID, u.Login, u.Email)
		}
	}
	for _, g := range groups {
		if ids[g.ID] {
			t.Errorf("group id %d is also a user id", g.ID)
		}
		if len(g.Members) == 0 || g.Name == "" {
			t.Errorf("group %+v has no name or members", g)
		}
		for _, m := range g.Members {
			if !ids[m] {
				t.Errorf("group %s has member %d, not a user", g.Name, m)
			}
		}
	}
	if !strings.HasSuffix(groups[0].Name, "Owners") || !slices.Contains(groups[0].Members, users[1].ID) || !users[1].IsSiteAdmin {
		t.Errorf("the Owners group %+v should hold the site admin %+v", groups[0], users[1])
	}
	wantRoles := map[int]string{
		RoleLimitedAccess: "Limited Access", RoleRead: "Read", RoleContribute: "Contribute", RoleDesign: "Design",
		RoleFullControl: "Full Control", RoleEdit: "Edit",
	}
	for _, r := range roles {
		if wantRoles[r.RoleID] != r.Title || !strings.HasPrefix(r.PermMask, "0x") || len(r.PermMask) != 18 {
			t.Errorf("role %+v", r)
		}
		delete(wantRoles, r.RoleID)
		if r.RoleID == RoleFullControl && r.PermMask != "0x7fffffffffffffff" {
			t.Errorf("Full Control PermMask %s, want 0x7fffffffffffffff", r.PermMask)
		}
	}
	if len(wantRoles) != 0 {
		t.Errorf("missing roles %v", wantRoles)
	}
	if u, g, r := tn.Security("00000000-0000-0000-0000-000000000000"); u != nil || g != nil || r != nil {
		t.Error("Security of an unknown site is not empty")
	}

	// Every author of the walk is a user of the site.
	for _, o := range collect(t, tn, ReadOptions{IncludeVersions: true}, "/sites/small/Shared Documents", "/sites/small/Lists/Tasks") {
		for _, id := range []int{o.Author, o.ModifiedBy} {
			if !ids[id] {
				t.Errorf("%s: author %d is not a user of the site", o.ServerURL, id)
			}
		}
	}
}

// TestPrincipals checks that the principals of a permission walk's role assignments, with the
// members of their groups, come back from Principals, and nothing else.
func TestPrincipals(t *testing.T) {
	tn := newTenant(t, SmallProfile())
	site := tn.Sites()[0]
	objs := collect(t, tn, ReadOptions{IncludePermission: true}, "/sites/small/Shared Documents")
	var ids []int
	for _, ra := range objs[len(objs)-1].RoleAssignments {
		for _, a := range ra.Assignments {
			ids = append(ids, a.PrincipalID)
		}
	}
	users, groups := tn.Principals(site.ID, append(ids, 999_999))
	got := map[int]bool{}
	for _, u := range users {
		got[u.ID] = true
	}
	for _, g := range groups {
		got[g.ID] = true
		for _, m := range g.Members {
			if !got[m] && !slices.ContainsFunc(users, func(u User) bool { return u.ID == m }) {
				t.Errorf("group %d member %d missing from the users", g.ID, m)
			}
		}
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("principal %d of a role assignment missing", id)
		}
	}
	if got[999_999] {
		t.Error("an unknown principal id came back")
	}
}
