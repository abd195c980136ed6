package validate

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// RecordsSource yields the items of a tenant's exported records (the pipeline's, one pass): the
// files, folders and list items with their versions and role assignments, with principals resolved
// through each job's UserGroup.xml and Roles. Records delivered twice (the same job, file and
// sequence) count once; an object exported by more than one job keeps its latest job's record.
type RecordsSource struct {
	name string
	recs []*amrpipev1.Record
}

// NewRecordsSource reads recs; name names them in errors and reports.
func NewRecordsSource(name string, recs []*amrpipev1.Record) *RecordsSource {
	return &RecordsSource{name: name, recs: recs}
}

// Name names the records.
func (s *RecordsSource) Name() string { return s.name }

type recordKey struct {
	job, file string
	seq       uint64
}

type objectKey struct{ typ, id string }

// jobInfo is what a job's package says about its principals and options.
type jobInfo struct {
	logins   map[int64]string // user id → login
	groups   map[int64]string // group id → name
	roles    map[int64]string // role id → title
	versions bool             // ExportSettings IncludeVersions="All": version histories are complete
	perms    bool             // ExportSettings IncludeSecurity is not "None": role assignments were read
}

// names resolves principal ids: a job's own UserGroup.xml first, then every job's (the pipeline
// publishes principals once, from the plan's security job). Ids are per site collection: one that
// two jobs name differently is ambiguous and fails the source rather than guess.
type names struct {
	byJob map[string]*jobInfo
	all   [3]map[int64]string // logins, groups, roles of every job
	clash [3]map[int64]bool
}

const (
	nameLogin = iota
	nameGroup
	nameRole
)

func (n *names) note(kind int, id int64, v string) {
	if old, ok := n.all[kind][id]; ok && old != v {
		n.clash[kind][id] = true
	}
	n.all[kind][id] = v
}

func (n *names) lookup(job string, kind int, id int64) (string, error) {
	j := n.byJob[job]
	own := [3]map[int64]string{j.logins, j.groups, j.roles}[kind]
	if v, ok := own[id]; ok {
		return v, nil
	}
	if n.clash[kind][id] {
		return "", fmt.Errorf("principal or role id %d names different principals in different jobs (records of more than one site collection: validate one site at a time)", id)
	}
	return n.all[kind][id], nil
}

// Items builds every item; a record it cannot use (a file without a URL) is an error naming it.
func (s *RecordsSource) Items(ctx context.Context, fn func(*Item) error) error {
	jobs := map[string]*jobInfo{}
	nm := &names{byJob: jobs}
	for k := range nm.all {
		nm.all[k], nm.clash[k] = map[int64]string{}, map[int64]bool{}
	}
	job := func(id string) *jobInfo {
		j := jobs[id]
		if j == nil {
			j = &jobInfo{logins: map[int64]string{}, groups: map[int64]string{}, roles: map[int64]string{}}
			jobs[id] = j
		}
		return j
	}
	seen := map[recordKey]bool{}
	objects := map[objectKey]*amrpipev1.Record{}
	var order []objectKey
	lists := map[string]string{}         // list id → root folder URL
	perms := map[string][]assignmentOf{} // object id → assignments
	for _, r := range s.recs {
		k := recordKey{r.GetJobId(), r.GetSourceFile(), r.GetSequence()}
		if seen[k] {
			continue
		}
		seen[k] = true
		j := job(r.GetJobId())
		switch b := r.GetBody().(type) {
		case *amrpipev1.Record_User:
			j.logins[b.User.GetId()] = b.User.GetLogin()
			nm.note(nameLogin, b.User.GetId(), b.User.GetLogin())
		case *amrpipev1.Record_Group:
			j.groups[b.Group.GetId()] = b.Group.GetName()
			nm.note(nameGroup, b.Group.GetId(), b.Group.GetName())
		case *amrpipev1.Record_Role:
			j.roles[b.Role.GetRoleId()] = b.Role.GetTitle()
			nm.note(nameRole, b.Role.GetRoleId(), b.Role.GetTitle())
		case *amrpipev1.Record_ExportSettings:
			j.versions = b.ExportSettings.GetIncludeVersions() == "All"
			sec := b.ExportSettings.GetIncludeSecurity()
			j.perms = sec != "" && sec != "None"
		case *amrpipev1.Record_List:
			lists[b.List.GetId()] = b.List.GetRootFolderUrl()
		case *amrpipev1.Record_RoleAssignment:
			ra := b.RoleAssignment
			if ra.GetObjectType() == 1 { // the list's own
				continue
			}
			for _, a := range ra.GetAssignments() {
				perms[ra.GetObjectId()] = append(perms[ra.GetObjectId()], assignmentOf{job: r.GetJobId(), a: a})
			}
			if len(ra.GetAssignments()) == 0 {
				perms[ra.GetObjectId()] = append(perms[ra.GetObjectId()], assignmentOf{job: r.GetJobId()})
			}
		case *amrpipev1.Record_File, *amrpipev1.Record_Folder, *amrpipev1.Record_ListItem:
			ok := objectKey{r.GetObjectType(), r.GetObjectId()}
			if _, dup := objects[ok]; !dup {
				order = append(order, ok)
			}
			objects[ok] = r // a later job's record is the object's latest state
		}
	}
	for n, ok := range order {
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r := objects[ok]
		it, err := s.item(r, jobs[r.GetJobId()], lists, perms, nm)
		if err != nil {
			return fmt.Errorf("%s record %s/%s #%d (%s %s): %w", s.name, r.GetJobId(), r.GetSourceFile(), r.GetSequence(), ok.typ, ok.id, err)
		}
		if it == nil {
			continue
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

type assignmentOf struct {
	job string
	a   *amrpipev1.Assignment // nil: a scope with no assignment
}

func (s *RecordsSource) item(r *amrpipev1.Record, j *jobInfo, lists map[string]string, perms map[string][]assignmentOf, nm *names) (*Item, error) {
	it := &Item{URL: r.GetSpObject().GetServerRelativeUrl(), Size: -1}
	var listID string
	var a, e int64
	switch b := r.GetBody().(type) {
	case *amrpipev1.Record_File:
		f := b.File
		it.Kind, it.Size, listID, a, e = KindFile, f.GetFileSize(), f.GetListId(), f.GetAuthor(), f.GetModifiedBy()
		it.Modified = f.GetTimeLastModified().AsTime()
		it.Versions = versionCount(len(f.GetVersions()), j.versions)
		if it.URL == "" {
			it.URL = f.GetServerRelativeUrl()
		}
	case *amrpipev1.Record_Folder:
		f := b.Folder
		it.Kind, listID, a, e = KindFolder, f.GetContainingDocumentLibrary(), f.GetAuthor(), f.GetModifiedBy()
		it.Modified = f.GetTimeLastModified().AsTime()
		if it.URL == "" {
			it.URL = f.GetServerRelativeUrl()
		}
	case *amrpipev1.Record_ListItem:
		li := b.ListItem
		if li.GetDocType() == "File" || li.GetDocType() == "Folder" {
			return nil, nil // the SPFile's or SPFolder's own record stands for it
		}
		it.Kind, listID, a, e = KindListItem, li.GetParentListId(), li.GetAuthor(), li.GetModifiedBy()
		it.Modified = li.GetTimeLastModified().AsTime()
		it.Versions = versionCount(len(li.GetVersions()), j.versions)
		if it.URL == "" {
			it.URL = li.GetServerRelativeUrl()
		}
	}
	if it.URL == "" {
		return nil, fmt.Errorf("no server-relative URL")
	}
	it.List = listURL(lists, listID)
	var err error
	if it.Author, err = s.principal(nm, r.GetJobId(), nameLogin, a); err != nil {
		return nil, err
	}
	if it.Editor, err = s.principal(nm, r.GetJobId(), nameLogin, e); err != nil {
		return nil, err
	}
	if !j.perms {
		it.Permissions = PermissionsUnknown
	} else if as, ok := perms[r.GetObjectId()]; ok {
		it.Permissions = PermissionsUnique
		for _, x := range as {
			if x.a == nil {
				continue
			}
			name, err := s.principal(nm, x.job, nameLogin, x.a.GetPrincipalId())
			if err == nil && strings.HasPrefix(name, "user ") {
				name, err = s.principal(nm, x.job, nameGroup, x.a.GetPrincipalId())
			}
			if err != nil {
				return nil, err
			}
			role, err := s.principal(nm, x.job, nameRole, x.a.GetRoleId())
			if err != nil {
				return nil, err
			}
			it.Principals = append(it.Principals, name+"="+role)
		}
	} else {
		it.Permissions = PermissionsInherited
	}
	it.Modified = knownTime(it.Modified)
	return it, nil
}

// The mapping of an exported object to an Item that every source over the pipeline's exports
// (records, the inventory) shares.

// listURL is the root folder URL of list listID, from lists (list id → root folder URL).
func listURL(lists map[string]string, listID string) string {
	if u := lists[listID]; u != "" {
		return u
	}
	return "list " + listID // a job that did not export the list object
}

// versionCount counts the versions of an object with history earlier versions, the current
// included, when its job exported versions; 0 (unknown) otherwise.
func versionCount(history int, exported bool) int {
	if !exported {
		return 0
	}
	return history + 1
}

// knownTime is t, or the zero time (unknown) for the epoch a manifest writes for no time.
func knownTime(t time.Time) time.Time {
	if t.Equal(time.Unix(0, 0).UTC()) {
		return time.Time{}
	}
	return t
}

// unnamed shows an id no principal or role record names, in the reports.
func unnamed(kind int, id int64) string {
	return [3]string{"user ", "principal ", "role "}[kind] + strconv.FormatInt(id, 10)
}

// principal names a principal or role id; an id no record names stays visible in the reports as
// "user N", "principal N" or "role N".
func (s *RecordsSource) principal(nm *names, job string, kind int, id int64) (string, error) {
	if id == 0 {
		return "", nil
	}
	v, err := nm.lookup(job, kind, id)
	if err != nil || v != "" {
		return v, err
	}
	return unnamed(kind, id), nil
}
