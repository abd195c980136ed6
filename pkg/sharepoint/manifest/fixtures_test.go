package manifest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// parseAll returns every record of data, and the error that ended parsing
// (nil at a clean end of input).
func parseAll(data []byte, opts Options) ([]*amrpipev1.Record, error) {
	var recs []*amrpipev1.Record
	p := NewParser(bytes.NewReader(data), opts)
	for {
		r, err := p.Next()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
	}
}

// fixtures returns every XML sample under testdata/sp-dev-docs, by path.
func fixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "sp-dev-docs", "*.xml"))
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		if out[f], err = os.ReadFile(f); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "sp-dev-docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// counts tallies records by body type, plus nested assignments and members.
type counts struct {
	files, folders, items, lists, roles, roleAssignments, assignments int
	users, groups, members, generic, other                            int
}

func tally(recs []*amrpipev1.Record) counts {
	var c counts
	for _, r := range recs {
		switch b := r.Body.(type) {
		case *amrpipev1.Record_File:
			c.files++
		case *amrpipev1.Record_Folder:
			c.folders++
		case *amrpipev1.Record_ListItem:
			c.items++
		case *amrpipev1.Record_List:
			c.lists++
		case *amrpipev1.Record_Role:
			c.roles++
		case *amrpipev1.Record_RoleAssignment:
			c.roleAssignments++
			c.assignments += len(b.RoleAssignment.Assignments)
		case *amrpipev1.Record_User:
			c.users++
		case *amrpipev1.Record_Group:
			c.groups++
			c.members += len(b.Group.MemberIds)
		case *amrpipev1.Record_GenericObject:
			c.generic++
		default:
			c.other++
		}
	}
	return c
}

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPublicFixtures(t *testing.T) {
	tests := []struct {
		file    string
		kind    FileKind
		want    counts
		errIs   error  // the parse must fail with this class
		errAt   string // ... at the offset of this text (first occurrence)
		records int
		check   func(t *testing.T, recs []*amrpipev1.Record)
	}{
		{file: "UserGroup.xml", kind: KindUserGroup, records: 32, want: counts{users: 20, groups: 12, members: 18}, check: checkUserGroup},
		{file: "Manifest.excerpt.normalized.xml", kind: KindManifest, records: 4, want: counts{files: 1, roleAssignments: 3, assignments: 25}, check: checkPermissionExcerpt},
		{file: "Manifest.overview-2023.xml", kind: KindManifest, records: 4, want: counts{files: 1, folders: 1, items: 1, lists: 1}, check: checkOverviewManifest},
		{file: "Manifest.roles.xml", kind: KindManifest, records: 4, want: counts{roles: 2, roleAssignments: 2, assignments: 4}, check: checkRoles},
		{file: "UserGroupMap.xml", kind: KindUserGroup, records: 4, want: counts{users: 2, groups: 2, members: 3}},
		{file: "SystemData.xml", kind: KindSystemData, records: 6, want: counts{other: 6}, check: checkSystemData},
		{file: "ExportSettings.xml", kind: KindExportSettings, records: 2, want: counts{other: 2}, check: checkExportSettings},
		{file: "File.EncodedAttributes.wrapped.xml", kind: KindManifest, records: 1, want: counts{files: 1}, check: checkEncodedAttributes},
		{file: "Manifest.excerpt.xml", errIs: ErrMalformed, errAt: "...>"},
		{file: "File.EncodedAttributes.xml", errIs: ErrUnknownRoot, errAt: "<File"},
		{file: "File.EncodedAttributes.fragment.xml", errIs: ErrUnknownRoot, errAt: "<File"},
		{file: "ArchivedFiles.xml", errIs: ErrUnknownRoot, errAt: "<ArchivedFiles"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := readFixture(t, tt.file)
			for _, stdlib := range []bool{false, true} {
				recs, err := parseAll(data, Options{JobID: "job-1", SourceFile: tt.file, StdlibXML: stdlib})
				if tt.errIs != nil {
					var se *SyntaxError
					if !errors.As(err, &se) || !errors.Is(err, tt.errIs) {
						t.Fatalf("stdlib=%v: err = %v, want a *SyntaxError of class %v", stdlib, err, tt.errIs)
					}
					if want := int64(bytes.Index(data, []byte(tt.errAt))); !stdlib && se.Offset != want {
						t.Errorf("error offset %d, want %d (%q): %v", se.Offset, want, tt.errAt, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("stdlib=%v: %v", stdlib, err)
				}
				if len(recs) != tt.records {
					t.Errorf("stdlib=%v: %d records, want %d", stdlib, len(recs), tt.records)
				}
				if got := tally(recs); got != tt.want {
					t.Errorf("stdlib=%v: counts %+v, want %+v", stdlib, got, tt.want)
				}
				for i, r := range recs {
					if r.JobId != "job-1" || r.SourceFile != tt.file || r.Sequence != uint64(i) {
						t.Errorf("record %d envelope = %q %q %d", i, r.JobId, r.SourceFile, r.Sequence)
					}
				}
				if tt.check != nil {
					tt.check(t, recs)
				}
			}
			p := NewParser(bytes.NewReader(data), Options{})
			_, _ = p.Next()
			if tt.errIs == nil && p.Kind() != tt.kind {
				t.Errorf("Kind() = %v, want %v", p.Kind(), tt.kind)
			}
		})
	}
}

func checkUserGroup(t *testing.T, recs []*amrpipev1.Record) {
	u := recs[0].GetUser()
	if recs[0].ObjectId != "1" || recs[0].ObjectType != "User" || u.GetId() != 1 || !u.GetIsDeleted() ||
		u.GetLogin() != "c:0+.w|s-1-5-82-1817844472-4009360788-1366746990-4201194761-44825052" ||
		u.GetSystemId() != "YzowKy53fHMtMS01LTgyLTE4MTc4NDQ0NzItNDAwOTM2MDc4OC0xMzY2NzQ2OTkwLTQyMDExOTQ3NjEtNDQ4MjUwNTI=" {
		t.Errorf("first user = %v", recs[0])
	}
	var deleted, systemMember int
	for _, r := range recs {
		if u := r.GetUser(); u != nil {
			if _, ok := u.Extra["MobilePhone"]; ok {
				t.Errorf("MobilePhone should be a field, not extra: %v", u)
			}
			if u.GetIsDeleted() {
				deleted++
			}
			if u.GetEmail() == "user1@prepspo.msolctp-int.com" && u.GetName() != "OIDC User0" {
				t.Errorf("user with email user1@ = %v", u)
			}
		}
		for _, m := range r.GetGroup().GetMemberIds() {
			if m == 1073741823 {
				systemMember++
			}
		}
	}
	if deleted == 0 || systemMember == 0 {
		t.Errorf("deleted users %d, system-account memberships %d: want both > 0", deleted, systemMember)
	}
}

func checkPermissionExcerpt(t *testing.T, recs []*amrpipev1.Record) {
	r := recs[0]
	f := r.GetFile()
	if r.ObjectType != "SPFile" || r.ObjectId != "e85f2a94-f760-4bb4-9460-dde1cabc2fd4" {
		t.Errorf("envelope %q %q", r.ObjectType, r.ObjectId)
	}
	if f.GetUrl() != "SampleDocLib/Forms/AllItems.aspx" || f.GetServerRelativeUrl() != "/SampleDocLib/Forms/AllItems.aspx" ||
		f.GetScopeId() != "08501058-995b-4fc6-b908-66da16e6bb52" || f.GetFileSize() != 2763 || f.GetLevel() != 1 ||
		!f.GetIsGhosted() || f.GetSetupPath() != `pages\viewpage.aspx` || f.GetSetupPathVersion() != 15 || f.GetSetupPathUser() != "12" ||
		f.GetParentWebUrl() != "/" || f.GetVersion() != "1.0" || len(f.GetExtra()) != 0 {
		t.Errorf("file = %v", f)
	}
	if got := f.GetTimeCreated().AsTime(); !got.Equal(utc("2023-05-11T05:19:48")) {
		t.Errorf("TimeCreated = %v", got)
	}
	ra := recs[1]
	if ra.SpObject != nil || ra.ObjectType != "RoleAssignment" || ra.ObjectId != "08501058-995b-4fc6-b908-66da16e6bb52" {
		t.Errorf("role assignment envelope = %v", ra)
	}
	if got := ra.GetRoleAssignment(); got.GetObjectType() != 1 || got.GetObjectUrl() != "SampleDocLib" ||
		len(got.GetAssignments()) != 10 || got.GetAssignments()[9].GetRoleId() != 1073741927 || got.GetAssignments()[9].GetPrincipalId() != 16 {
		t.Errorf("role assignment = %v", got)
	}
}

func checkOverviewManifest(t *testing.T, recs []*amrpipev1.Record) {
	folder, lib, file, item := recs[0].GetFolder(), recs[1].GetList(), recs[2].GetFile(), recs[3].GetListItem()
	if folder.GetUrl() != "Shared Documents" || folder.GetServerRelativeUrl() != "/Shared Documents" || folder.GetSortBehavior() != "1" {
		t.Errorf("folder = %v", folder)
	}
	if !lib.GetDocumentLibrary() || lib.GetTitle() != "Documents" || lib.GetBaseTemplate() != "DocumentLibrary" || lib.GetExtra()["HasUniqueRoleAssignments"] != "true" {
		t.Errorf("library = %v", lib)
	}
	if file.GetAuthor() != 1 || file.GetChecksum() != "3k59aOUae2xygD5B/jtxY4x0Xko=" || file.GetFileSize() != 17662712 || file.GetListItemIntId() != 1 {
		t.Errorf("file = %v", file)
	}
	if item.GetDocType() != "File" || item.GetModerationStatus() != "Approved" || item.GetIntId() != 1 || item.GetOrder() != 100 ||
		item.GetDocId() != "aef2bb11-7ee8-4343-87cd-5938d260e647" || item.GetDirName() != "/Shared Documents" || len(item.GetFields()) != 0 {
		t.Errorf("item = %v", item)
	}
	if recs[1].GetSpObject().GetParentWebUrl() != "/" || recs[1].ObjectType != "SPDocumentLibrary" {
		t.Errorf("library header = %v", recs[1].GetSpObject())
	}
}

func checkRoles(t *testing.T, recs []*amrpipev1.Record) {
	r := recs[0].GetRole()
	if r.GetRoleId() != 1073751825 || r.GetPermMask() != "206292717568" || !r.GetHidden() || r.GetRoleOrder() != 160 || r.GetType() != 1 {
		t.Errorf("role = %v", r)
	}
	if recs[0].GetSpObject().GetObjectType() != "DeploymentRoles" || recs[1].GetSpObject().GetObjectType() != "DeploymentRoles" {
		t.Errorf("roles lack their SPObject header")
	}
	if recs[0].GetSpObject() == recs[1].GetSpObject() {
		t.Errorf("two records share one header message")
	}
	if recs[2].GetSpObject().GetParentWebUrl() != "/teams/temp" || len(recs[2].GetRoleAssignment().GetAssignments()) != 0 {
		t.Errorf("first role assignment = %v", recs[2])
	}
}

func checkSystemData(t *testing.T, recs []*amrpipev1.Record) {
	if v := recs[0].GetSchemaVersion(); v.GetVersion() != "15.0.0.0" || v.GetBuild() != "16.0.3111.1200" || v.GetSiteVersion() != "15" {
		t.Errorf("schema version = %v", v)
	}
	if m := recs[1].GetManifestFile(); m.GetName() != "Manifest.xml" {
		t.Errorf("manifest file = %v", m)
	}
	if o := recs[5].GetSystemObject(); o.GetType() != "List" || o.GetUrl() != "/personal/username/_catalog/users" {
		t.Errorf("last system object = %v", o)
	}
}

func checkExportSettings(t *testing.T, recs []*amrpipev1.Record) {
	es := recs[0].GetExportSettings()
	if es.GetSiteUrl() != "https://url" || es.GetIncludeSecurity() != "All" || es.GetSourceType() != "Other" ||
		es.GetExtra()["DetailedSource"] != "My special source type not in the list" {
		t.Errorf("export settings = %v", es)
	}
	if d := recs[1].GetDeploymentObject(); d.GetId() != "GUID for list" || d.GetType() != "List" || d.GetParentId() != "GUID for web" {
		t.Errorf("deployment object = %v", d)
	}
}

func checkEncodedAttributes(t *testing.T, recs []*amrpipev1.Record) {
	f := recs[0].GetFile()
	if f.GetUrl() != "testlib/File_0905-1653-31240" || f.GetVersion() != "1.0" || f.GetParentWebUrl() != "/" || f.GetName() != "File_0905-1653-31240" {
		t.Errorf("decoded file = %v", f)
	}
	if _, ok := f.GetExtra()["EncodedAttributes"]; ok {
		t.Errorf("EncodedAttributes leaked into extra")
	}
}

// TestOtherPackageFiles covers the files no public sample shows, from their
// schema pages, and both spellings of the ViewFormsList namespace.
func TestOtherPackageFiles(t *testing.T) {
	tests := []struct {
		name, doc string
		kind      FileKind
		check     func(t *testing.T, recs []*amrpipev1.Record)
	}{
		{"RootObjectMap", `<RootObjects xmlns="urn:deployment-rootobjectmap-schema"><RootObject Id="a" Type="List" ParentId="w" WebUrl="/sites/x" Url="/sites/x/Docs" IsDependency="false" /></RootObjects>`, KindRootObjectMap,
			func(t *testing.T, recs []*amrpipev1.Record) {
				if o := recs[0].GetRootObject(); len(recs) != 1 || o.GetWebUrl() != "/sites/x" || o.GetType() != "List" {
					t.Errorf("records = %v", recs)
				}
			}},
		{"LookupListMap", `<LookupLists xmlns="urn:deployment-lookuplistmap-schema"><LookupList Id="l1" Url="/Lists/Regions" Included="false"><LookupItems><LookupItem Id="3" DocId="d3" Url="/Lists/Regions/3_.000" Included="false" /><LookupItem Id="4" DocId="d4" Url="/Lists/Regions/4_.000" Included="true" /></LookupItems></LookupList></LookupLists>`, KindLookupListMap,
			func(t *testing.T, recs []*amrpipev1.Record) {
				l := recs[0].GetLookupList()
				if len(recs) != 1 || len(l.GetItems()) != 2 || l.GetItems()[1].GetId() != 4 || !l.GetItems()[1].GetIncluded() {
					t.Errorf("records = %v", recs)
				}
			}},
		{"Requirements", `<Requirements xmlns="urn:deployment-requirements-schema"><Requirement Type="FeatureDefinition" Id="f1" Name="Publishing" Data="x" Version="15.0" /></Requirements>`, KindRequirements,
			func(t *testing.T, recs []*amrpipev1.Record) {
				r := recs[0].GetRequirement()
				if r.GetType() != "FeatureDefinition" || r.GetName() != "Publishing" || r.GetExtra()["Version"] != "15.0" {
					t.Errorf("records = %v", recs)
				}
			}},
		{"ViewFormsList", `<ViewFormsList xmlns="urn:deployment-viewformlist-schema"><ViewForm Id="w1" Type="View" /></ViewFormsList>`, KindViewFormsList,
			func(t *testing.T, recs []*amrpipev1.Record) {
				if v := recs[0].GetViewFormsListEntry(); v.GetId() != "w1" || v.GetType() != "View" {
					t.Errorf("records = %v", recs)
				}
			}},
		{"ViewFormsList with an s", `<ViewFormsList xmlns="urn:deployment-viewformslist-schema"/>`, KindViewFormsList, nil},
		{"empty LookupLists", `<LookupLists xmlns="urn:deployment-lookuplistmap-schema"/>`, KindLookupListMap, nil},
		{"prefixed root", `<m:SPObjects xmlns:m="urn:deployment-manifest-schema"><m:SPObject Id="s" ObjectType="SPContentType"><m:ContentType ID="0x01" Name="Item"/></m:SPObject></m:SPObjects>`, KindManifest,
			func(t *testing.T, recs []*amrpipev1.Record) {
				g := recs[0].GetGenericObject()
				if recs[0].ObjectType != "SPContentType" || g.GetElement() != "ContentType" || g.GetExtra()["Name"] != "Item" {
					t.Errorf("records = %v", recs)
				}
			}},
		{"role assignments in an SPObject", `<SPObjects><SPObject Id="ra" ObjectType="DeploymentRoleAssignments"><RoleAssignments><RoleAssignment ScopeId="s" ObjectType="2"><Assignment RoleId="1073741829" PrincipalId="3"/></RoleAssignment></RoleAssignments></SPObject></SPObjects>`, KindManifest,
			func(t *testing.T, recs []*amrpipev1.Record) {
				if len(recs) != 1 || recs[0].GetSpObject().GetId() != "ra" || recs[0].GetRoleAssignment().GetAssignments()[0].GetPrincipalId() != 3 {
					t.Errorf("records = %v", recs)
				}
			}},
		{"versions, fields, properties, attachments", `<SPObjects>
<SPObject Id="f" ObjectType="SPFile" Url="/sites/a/Docs/x.docx"><File Id="f" Url="Docs/x.docx" Version="2.0" Author="7" ModifiedBy="i:0#.f|membership|bob@x" NoExecute="true">
  <Properties><Property Name="vti_title" Type="String" Value="T" Access="ReadOnly"/></Properties>
  <Versions><File Id="v1" Version="1.0" Url="_vti_history/512/Docs/x.docx" FileSize="10" TimeCreated="2020-01-02T03:04:05.1234567" TimeLastModified="2020-01-02T03:04:05Z"
    Name="x.docx" ParentWebId="w" ParentWebUrl="/sites/a" ParentId="d" ListId="l" ListItemIntId="4" Custom="c" /></Versions>
</File></SPObject>
<SPObject Id="i" ObjectType="SPListItem"><ListItem Id="i" IntId="4" Order="400.5" DocType="Folder" ContentTypeId="0x0120" ScopeId="s">
  <Fields><Field Name="SMTotalFileCount" FieldId="fid" Type="Lookup" Value="12"/>text<FieldRef Name="ignored"/></Fields>
  <Versions><ListItem Version="1.0" IntId="4" TimeLastModified="2021-03-04T05:06:07+02:00"><Fields><Field Name="Title" Value="old"/></Fields></ListItem></Versions>
  <Attachments><Attachment Name="a.txt" Url="Lists/L/Attachments/4/a.txt" Author="2"/></Attachments>
</ListItem></SPObject>
<SPObject Id="d" ObjectType="SPFolder"><Folder Id="d" Name="D" ScopeId="s2" /></SPObject></SPObjects>`, KindManifest,
			func(t *testing.T, recs []*amrpipev1.Record) {
				f, li := recs[0].GetFile(), recs[1].GetListItem()
				if d := recs[2].GetFolder(); d.GetScopeId() != "s2" || len(d.GetExtra()) != 0 {
					t.Errorf("folder = %v", d)
				}
				if f.GetAuthor() != 7 || f.GetModifiedBy() != 0 || f.GetExtra()["ModifiedBy"] != "i:0#.f|membership|bob@x" || !f.GetNoExecute() {
					t.Errorf("file = %v", f)
				}
				if p := f.GetProperties(); len(p) != 1 || p[0].GetName() != "vti_title" || p[0].GetExtra()["Access"] != "ReadOnly" {
					t.Errorf("properties = %v", p)
				}
				v := f.GetVersions()
				if len(v) != 1 || v[0].GetTimeCreated().GetNanos() != 123456700 || v[0].GetFileSize() != 10 {
					t.Errorf("versions = %v", v)
				}
				// A version carries its file's location attributes typed; only what no field
				// models goes to extra.
				if v[0].GetName() != "x.docx" || v[0].GetParentWebId() != "w" || v[0].GetParentWebUrl() != "/sites/a" ||
					v[0].GetParentId() != "d" || v[0].GetListId() != "l" || v[0].GetListItemIntId() != 4 ||
					len(v[0].GetExtra()) != 1 || v[0].GetExtra()["Custom"] != "c" {
					t.Errorf("version location = %v", v[0])
				}
				if li.GetScopeId() != "s" || len(li.GetExtra()) != 0 || li.GetVersions()[0].GetIntId() != 4 || len(li.GetVersions()[0].GetExtra()) != 0 {
					t.Errorf("list item scope and version id = %v", li)
				}
				if li.GetOrder() != 400.5 || len(li.GetFields()) != 1 || li.GetFields()[0].GetFieldId() != "fid" || li.GetFields()[0].GetValue() != "12" {
					t.Errorf("list item = %v", li)
				}
				if lv := li.GetVersions(); len(lv) != 1 || !lv[0].GetTimeLastModified().AsTime().Equal(utc("2021-03-04T03:06:07")) || lv[0].GetFields()[0].GetValue() != "old" {
					t.Errorf("list item versions = %v", lv)
				}
				if at := li.GetAttachments(); len(at) != 1 || at[0].GetAuthor() != 2 || at[0].GetName() != "a.txt" {
					t.Errorf("attachments = %v", at)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, stdlib := range []bool{false, true} {
				p := NewParser(strings.NewReader(tt.doc), Options{StdlibXML: stdlib})
				var recs []*amrpipev1.Record
				err := Parse(context.Background(), strings.NewReader(tt.doc), Options{StdlibXML: stdlib}, func(r *amrpipev1.Record) error {
					recs = append(recs, r)
					return nil
				})
				if err != nil {
					t.Fatalf("stdlib=%v: %v", stdlib, err)
				}
				if _, err := p.Next(); err != nil && !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				if p.Kind() != tt.kind {
					t.Errorf("Kind() = %v, want %v", p.Kind(), tt.kind)
				}
				if tt.check != nil {
					tt.check(t, recs)
				}
			}
		})
	}
}
