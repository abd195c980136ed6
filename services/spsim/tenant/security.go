package tenant

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Principal ids of a site: groups are 3..3+Groups-1 (Owners, Visitors, Members first), users
// follow, and the System Account has SharePoint's fixed id.
const (
	firstGroupID    = 3
	SystemAccountID = 1073741823
)

// Standard role definition ids.
const (
	RoleLimitedAccess = 1073741825
	RoleRead          = 1073741826
	RoleContribute    = 1073741827
	RoleDesign        = 1073741828
	RoleFullControl   = 1073741829
	RoleEdit          = 1073741830
)

// permMask formats a BasePermissions High/Low pair as SharePoint's hex PermMask.
func permMask(high, low uint64) string { return fmt.Sprintf("0x%016x", high<<32|low) }

// standardRoles are SharePoint Online's built-in role definitions (BasePermissions High/Low as
// the REST API reports them).
func standardRoles() []Role {
	return []Role{
		{RoleID: RoleLimitedAccess, Title: "Limited Access", Description: "Can view specific lists, document libraries, list items, folders, or documents when given permissions.", PermMask: permMask(48, 134287360), Hidden: true, RoleOrder: 160, Type: 1},
		{RoleID: RoleRead, Title: "Read", Description: "Can view pages and list items and download documents.", PermMask: permMask(176, 138612833), RoleOrder: 128, Type: 2},
		{RoleID: RoleContribute, Title: "Contribute", Description: "Can view, add, update, and delete list items and documents.", PermMask: permMask(432, 1011028719), RoleOrder: 64, Type: 3},
		{RoleID: RoleDesign, Title: "Design", Description: "Can view, add, update, delete, approve, and customize.", PermMask: permMask(432, 1012866047), RoleOrder: 32, Type: 4},
		{RoleID: RoleFullControl, Title: "Full Control", Description: "Has full control.", PermMask: permMask(2147483647, 4294967295), RoleOrder: 1, Type: 5},
		{RoleID: RoleEdit, Title: "Edit", Description: "Can add, edit and delete lists; can view, add, update and delete list items and documents.", PermMask: permMask(432, 1011030767), RoleOrder: 48, Type: 6},
	}
}

func (s *siteNode) firstUserID() int { return firstGroupID + s.spec.Groups }

// userAt picks a user of the site from h.
func (t *Tenant) userAt(s *siteNode, h uint64) int {
	return s.firstUserID() + int(mix(h, saltUser)%uint64(s.spec.Users))
}

func (t *Tenant) site(siteID string) (*siteNode, error) {
	for _, s := range t.sites {
		if strings.EqualFold(s.id, siteID) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("site %s: %w", siteID, ErrNotFound)
}

// Security is a site collection's users, groups and role definitions (UserGroup.xml with
// IncludeSecurity). Unknown sites give empty results.
func (t *Tenant) Security(siteID string) ([]User, []Group, []Role) {
	s, err := t.site(siteID)
	if err != nil {
		return nil, nil, nil
	}
	users := []User{t.systemAccount()}
	for k := range s.spec.Users {
		users = append(users, t.user(s, k))
	}
	groups := make([]Group, 0, s.spec.Groups)
	for g := range s.spec.Groups {
		groups = append(groups, t.group(s, g))
	}
	return users, groups, t.Roles()
}

// Roles are the role definitions (the same in every site).
func (t *Tenant) Roles() []Role { return slices.Clone(t.roles) }

// Principals are the users and groups among ids, plus the users who are members of those
// groups, so a UserGroup.xml written from them is self-contained.
func (t *Tenant) Principals(siteID string, ids []int) ([]User, []Group) {
	s, err := t.site(siteID)
	if err != nil {
		return nil, nil
	}
	wantUser := map[int]bool{}
	var groups []Group
	for _, id := range ids {
		switch g := id - firstGroupID; {
		case id == SystemAccountID:
			wantUser[id] = true
		case g >= 0 && g < s.spec.Groups:
			if !slices.ContainsFunc(groups, func(x Group) bool { return x.ID == id }) {
				groups = append(groups, t.group(s, g))
			}
		case id >= s.firstUserID() && id < s.firstUserID()+s.spec.Users:
			wantUser[id] = true
		}
	}
	for _, g := range groups {
		for _, m := range g.Members {
			wantUser[m] = true
		}
	}
	slices.SortFunc(groups, func(a, b Group) int { return a.ID - b.ID })
	var users []User
	if wantUser[SystemAccountID] {
		users = append(users, t.systemAccount())
	}
	for k := range s.spec.Users {
		if wantUser[s.firstUserID()+k] {
			users = append(users, t.user(s, k))
		}
	}
	return users, groups
}

func (t *Tenant) systemAccount() User {
	return User{ID: SystemAccountID, Name: "System Account", Login: `SHAREPOINT\system`, SystemID: systemID(`SHAREPOINT\system`)}
}

var asciiFold = strings.NewReplacer("ë", "e", "ü", "u", "ö", "o", "'", "")

// user is the k-th user of a site.
func (t *Tenant) user(s *siteNode, k int) User {
	h := mix(mix(s.hash, saltUser), uint64(k))
	first, last := firstNames[h%uint64(len(firstNames))], lastNames[mix(h, 1)%uint64(len(lastNames))]
	alias := strings.ToLower(asciiFold.Replace(first + "." + last + strconv.Itoa(k+1)))
	email := alias + "@" + t.loginDomain()
	return User{
		ID: s.firstUserID() + k, Name: first + " " + last, Login: "i:0#.f|membership|" + email, Email: email,
		SystemID:    systemID("i:0h.f|membership|" + strings.ReplaceAll(guid(h), "-", "")[:16] + "@live.com"),
		IsSiteAdmin: k == 0, IsDeleted: k > 0 && h%37 == 0,
	}
}

// group is the g-th group of a site: Owners, Visitors, Members, then project groups.
func (t *Tenant) group(s *siteNode, g int) Group {
	h := mix(mix(s.hash, saltGroup), uint64(g))
	grp := Group{ID: firstGroupID + g, Owner: firstGroupID}
	var n int
	switch g {
	case 0:
		grp.Name, grp.Description, n = s.title+" Owners", "Use this group to grant people full control permissions to the SharePoint site: "+s.title, 2
	case 1:
		grp.Name, grp.Description, n = s.title+" Visitors", "Use this group to grant people read permissions to the SharePoint site: "+s.title, s.spec.Users/4
	case 2:
		grp.Name, grp.Description, n = s.title+" Members", "Use this group to grant people contribute permissions to the SharePoint site: "+s.title, s.spec.Users/2
	default:
		grp.Name, grp.Description, n = "Project Team "+strconv.Itoa(g-2), "Members of project "+strconv.Itoa(g-2), 1+int(h%15)
	}
	n = min(max(n, 1), s.spec.Users, 50)
	// Members are n distinct users from a start and an odd stride; the owners group starts at the
	// site admin.
	start, stride := int(mix(h, 1)%uint64(s.spec.Users)), 1
	if g == 0 {
		start = 0
	}
	for _, p := range []int{7, 11, 13, 17, 19, 23} {
		if s.spec.Users%p != 0 {
			stride = p
			break
		}
	}
	for i := range n {
		grp.Members = append(grp.Members, s.firstUserID()+(start+i*stride)%s.spec.Users)
	}
	slices.Sort(grp.Members)
	return grp
}

// assignments of a securable object with unique permissions, from its scope hash: the three
// standard groups, and sometimes a project group or a single user.
func (t *Tenant) assignments(s *siteNode, h uint64) []Assignment {
	out := []Assignment{
		{RoleID: RoleFullControl, PrincipalID: firstGroupID},
		{RoleID: RoleRead, PrincipalID: firstGroupID + 1},
		{RoleID: RoleEdit, PrincipalID: firstGroupID + 2},
	}
	if s.spec.Groups > 3 && h%2 == 0 {
		out = append(out, Assignment{RoleID: RoleContribute, PrincipalID: firstGroupID + 3 + int(mix(h, 1)%uint64(s.spec.Groups-3))})
	}
	if h%3 == 0 {
		out = append(out, Assignment{RoleID: RoleContribute, PrincipalID: t.userAt(s, mix(h, 2))})
	}
	if h%5 == 0 {
		out = append(out, Assignment{RoleID: RoleLimitedAccess, PrincipalID: t.userAt(s, mix(h, 3))})
	}
	return out
}

// roleAssignment is the RoleAssignment of a unique-permission object.
func (t *Tenant) roleAssignment(l *listNode, scope, objectID string, objectType int, objectURL string) RoleAssignment {
	rw := l.site.rootWeb
	return RoleAssignment{
		ScopeID: scope, RoleDefWebID: rw.id, RoleDefWebURL: strings.TrimPrefix(rw.url, "/"),
		ObjectID: objectID, ObjectType: objectType, ObjectURL: objectURL,
		Assignments: t.dropAssignment(scope, t.assignments(l.site, hashString(l.site.hash, scope))),
	}
}
