package validate

import (
	"context"
	"errors"
	"fmt"

	"github.com/amrpipe/amrpipe/pkg/inventory"
)

// ErrInventoryPass is wrapped by the error of an inventory source whose tenant has no pass, an
// open pass, or a latest pass that ended incomplete: its objects are not a tenant's whole state.
var ErrInventoryPass = errors.New("no complete latest pass")

// InventorySource yields the items of one tenant of an inventory (pkg/inventory): the latest state
// of its files, folders and list items (Store.Objects; deleted objects are not items), mapped as
// RecordsSource maps records. Versions are counted when a pass of the tenant exported any
// (IncludeVersions), permissions known when a pass exported permissions; unique permissions name
// their grants through the principals and roles of the role assignment's job (Store.Grants).
type InventorySource struct {
	store  *inventory.Store
	tenant string
	under  []string
}

// NewInventorySource reads tenant (an inventory pass's Tenant, e.g. contoso.sharepoint.com) of store.
func NewInventorySource(store *inventory.Store, tenant string) *InventorySource {
	return &InventorySource{store: store, tenant: tenant}
}

// Under returns the source limited to the items under these server-relative paths (a
// validation's mapping prefixes of its side): the items outside are out of scope anyway, and
// the inventory then reads only the rest.
func (s *InventorySource) Under(paths ...string) *InventorySource {
	c := *s
	c.under = append([]string(nil), paths...)
	return &c
}

// Name names the tenant in the inventory.
func (s *InventorySource) Name() string { return "inventory of " + s.tenant }

// Items yields every item; a tenant without a complete latest pass is an error wrapping
// ErrInventoryPass.
func (s *InventorySource) Items(ctx context.Context, fn func(*Item) error) error {
	passes, err := s.store.Passes(ctx)
	if err != nil {
		return err
	}
	var latest *inventory.PassInfo
	versions, perms := false, false
	for i, p := range passes {
		if p.Tenant != s.tenant {
			continue
		}
		if p.Open() {
			return fmt.Errorf("%s: pass %d is still open: %w", s.Name(), p.ID, ErrInventoryPass)
		}
		latest = &passes[i]
		versions = versions || p.Counts.Versions > 0
		perms = perms || p.Permissions
	}
	switch {
	case latest == nil:
		return fmt.Errorf("%s: the inventory has no pass of this tenant: %w", s.Name(), ErrInventoryPass)
	case !latest.Complete:
		return fmt.Errorf("%s: its latest pass %d ended incomplete: %w", s.Name(), latest.ID, ErrInventoryPass)
	}
	names, err := s.store.Names(ctx, s.tenant)
	if err != nil {
		return err
	}
	grants := map[string][]inventory.Grant{}
	if perms {
		if err := s.store.Grants(ctx, s.tenant, func(id string, g []inventory.Grant) error {
			grants[id] = g
			return nil
		}); err != nil {
			return err
		}
	}
	lists := map[string]string{}
	if err := s.store.Objects(ctx, s.tenant, inventory.Filter{Types: []string{"SPList", "SPDocumentLibrary"}, Under: s.under}, func(o *inventory.Object) error {
		lists[o.ID] = o.URL
		return nil
	}); err != nil {
		return err
	}
	return s.store.Objects(ctx, s.tenant, inventory.Filter{Types: []string{"SPFile", "SPFolder", "SPListItem"}, Under: s.under}, func(o *inventory.Object) error {
		it := &Item{URL: o.URL, List: listURL(lists, o.ListID), Size: -1, Modified: knownTime(o.Modified)}
		switch o.Type {
		case "SPFile":
			it.Kind, it.Size, it.Versions = KindFile, o.Size, versionCount(int(o.VersionCount), versions)
		case "SPFolder":
			it.Kind = KindFolder
		default:
			if o.DocID != "" {
				return nil // a file's or folder's own list item: the SPFile or SPFolder stands for it
			}
			it.Kind, it.Versions = KindListItem, versionCount(int(o.VersionCount), versions)
		}
		if it.URL == "" {
			return fmt.Errorf("%s: %s %s has no server-relative URL", s.Name(), o.Type, o.ID)
		}
		it.Author = login(names, o, o.Author, o.AuthorLogin)
		it.Editor = login(names, o, o.Editor, o.EditorLogin)
		switch {
		case !perms:
			it.Permissions = PermissionsUnknown
		case o.UniquePermissions:
			it.Permissions = PermissionsUnique
			for _, g := range grants[o.ID] {
				p, r := g.Principal, g.Role
				if p == "" {
					p = unnamed(nameGroup, g.PrincipalID)
				}
				if r == "" {
					r = unnamed(nameRole, g.RoleID)
				}
				it.Principals = append(it.Principals, p+"="+r)
			}
		default:
			it.Permissions = PermissionsInherited
		}
		return fn(it)
	})
}

// login is a user's login: the one Store.Objects read (the object's job's), else as names resolve
// it, else the id shown as RecordsSource shows it.
func login(names *inventory.Names, o *inventory.Object, id int64, known string) string {
	switch {
	case known != "":
		return known
	case id == 0:
		return ""
	}
	if l := names.Login(o.LastJob, o.Scope, id); l != "" {
		return l
	}
	return unnamed(nameLogin, id)
}
