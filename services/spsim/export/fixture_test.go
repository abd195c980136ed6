package export

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// memSink keeps a copy of every blob, as the Azure upload would.
type memSink struct {
	mu    sync.Mutex
	blobs []blob
	fail  error // returned by Put when set
}

type blob struct {
	name     string
	data     []byte
	metadata map[string]*string
}

func (s *memSink) Put(_ context.Context, name string, data []byte, metadata map[string]*string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.blobs = append(s.blobs, blob{name: name, data: bytes.Clone(data), metadata: metadata})
	return nil
}

func (s *memSink) get(t *testing.T, name string) blob {
	t.Helper()
	for _, b := range s.blobs {
		if b.name == name {
			return b
		}
	}
	t.Fatalf("no blob %s", name)
	return blob{}
}

func (s *memSink) names() []string {
	var n []string
	for _, b := range s.blobs {
		n = append(n, b.name)
	}
	return n
}

const (
	jobID     = "1efa0a61-ec6e-4225-83fe-14196215476c"
	siteID    = "c96a6c8c-562b-4816-9934-47466cc0c729"
	webID     = "7206fc09-e4af-48b3-8730-ed7321396d7a"
	webURL    = "/sites/hr"
	libID     = "e42a303c-995d-4237-8ce7-3545c41be140"
	libURL    = "/sites/hr/Shared Documents"
	rootID    = "2aba6aee-eb13-4379-b374-8fddc71e7d1a"
	folderID  = "33ff2f12-c818-4c8d-8578-c6d057172fd8"
	fileID    = "e72e2015-91a4-4d07-ae9a-7b6c76918d2a"
	listID    = "48ea9454-9538-47ae-926d-917df80bc93e"
	listRoot  = "6f1e0c55-2f0b-4d1e-9a77-1c2b3d4e5f60"
	scopeID   = "08501058-995b-4fc6-b908-66da16e6bb52"
	itemScope = "0b40dd84-46b8-435f-b497-e0fea7cecf1f"
)

var (
	created  = time.Date(2023, 5, 11, 5, 19, 48, 0, time.UTC)
	modified = time.Date(2024, 1, 17, 16, 1, 48, 0, time.UTC)
)

// fixtureObjects is a small library and list covering every object type, versions, fields,
// extended attributes, a deletion and a name that forces EncodedAttributes.
func fixtureObjects() []*tenant.Object {
	common := func(o tenant.Object) *tenant.Object {
		o.SiteID, o.WebID, o.WebURL = siteID, webID, webURL
		return &o
	}
	return []*tenant.Object{
		common(tenant.Object{Type: tenant.TypeDocumentLibrary, ID: libID, ParentID: webID, Name: "Shared Documents",
			ServerURL: libURL, WebRelURL: "Shared Documents", RootFolderID: rootID, Title: "Documents", BaseTemplate: 101, ItemCount: 1,
			ScopeID: scopeID, Created: created, Modified: modified}),
		common(tenant.Object{Type: tenant.TypeFolder, ID: rootID, ParentID: webID, Name: "Shared Documents", ListID: libID,
			ServerURL: libURL, WebRelURL: "Shared Documents", ScopeID: scopeID, Created: created, Modified: modified,
			ItemCount: 2, SMTotalFileCount: 2, SMTotalSize: 17663}),
		common(tenant.Object{Type: tenant.TypeFolder, ID: folderID, ParentID: rootID, Name: "Reports", ListID: libID,
			ServerURL: libURL + "/Reports", WebRelURL: "Shared Documents/Reports", IntID: 1, ScopeID: scopeID,
			Author: 12, ModifiedBy: 18, Created: created, Modified: modified}),
		common(tenant.Object{Type: tenant.TypeListItem, ID: "9c1d2e3f-0000-4000-8000-000000000001", ParentID: rootID,
			Name: "Reports", ListID: libID, ServerURL: libURL + "/Reports", WebRelURL: "Shared Documents/Reports",
			IntID: 1, ContentType: "0x0120", DocType: "Folder", DocID: folderID, ScopeID: scopeID, Author: 12, ModifiedBy: 18,
			Created: created, Modified: modified, Version: "1.0", SMTotalFileCount: 1, SMTotalSize: 17662}),
		common(tenant.Object{Type: tenant.TypeFile, ID: fileID, ParentID: folderID, Name: "Q1 & Q2 <draft>.docx",
			ListID: libID, ServerURL: libURL + "/Reports/Q1 & Q2 <draft>.docx",
			WebRelURL: "Shared Documents/Reports/Q1 & Q2 <draft>.docx", IntID: 2, ScopeID: itemScope,
			Author: 12, ModifiedBy: 18, Created: created, Modified: modified, Version: "3.0", Size: 17662,
			Versions: []tenant.Version{
				{Label: "1.0", Size: 1000, Modified: created, ModifiedBy: 12, Comment: "first\ndraft"},
				{Label: "2.1", Size: 2000, Modified: created.Add(time.Hour), ModifiedBy: 18},
			},
			Extended: []tenant.Attr{{Name: "ContentVersion", Value: "4"}, {Name: "NoExecute", Value: "true"}}}),
		common(tenant.Object{Type: tenant.TypeListItem, ID: "9c1d2e3f-0000-4000-8000-000000000002", ParentID: folderID,
			Name: "Q1 & Q2 <draft>.docx", ListID: libID, ServerURL: libURL + "/Reports/Q1 & Q2 <draft>.docx",
			WebRelURL: "Shared Documents/Reports/Q1 & Q2 <draft>.docx", IntID: 2, ContentType: "0x0101",
			DocType: "File", DocID: fileID, ScopeID: itemScope, Author: 12, ModifiedBy: 18, Created: created, Modified: modified,
			Version: "3.0",
			Fields: []tenant.Field{
				{Name: "Title", Type: "Text", Value: `Quarterly "numbers"`},
				{Name: "Pages", Type: "Number", Value: "12"},
			},
			Versions: []tenant.Version{{Label: "1.0", Modified: created, ModifiedBy: 12}}}),
		common(tenant.Object{Type: tenant.TypeFile, ID: "5d0c8a4e-1111-4aaa-8bbb-000000000003", ParentID: rootID,
			Name: "bad\x01name.txt", ListID: libID, ServerURL: libURL + "/bad\x01name.txt",
			WebRelURL: "Shared Documents/bad\x01name.txt", IntID: 3, ScopeID: scopeID,
			Created: created, Modified: modified, Version: "1.0", Size: 1}),
		common(tenant.Object{Type: tenant.TypeFile, ID: "5d0c8a4e-1111-4aaa-8bbb-000000000004", ParentID: rootID,
			Name: "gone.txt", ListID: libID, ServerURL: libURL + "/gone.txt", IsDeleted: true}),
		common(tenant.Object{Type: tenant.TypeList, ID: listID, ParentID: webID, Name: "Tasks",
			ServerURL: webURL + "/Lists/Tasks", WebRelURL: "Lists/Tasks", RootFolderID: listRoot, Title: "Tasks", BaseTemplate: 107}),
		common(tenant.Object{Type: tenant.TypeListItem, ID: "9c1d2e3f-0000-4000-8000-000000000005", ParentID: listRoot,
			Name: "1_.000", ListID: listID, ServerURL: webURL + "/Lists/Tasks/1_.000", WebRelURL: "Lists/Tasks/1_.000",
			IntID: 1, ContentType: "0x0108", Author: 18, ModifiedBy: 18, Created: created, Modified: modified,
			Version: "1.0", Fields: []tenant.Field{{Name: "Title", Type: "Text", Value: "Book the room"}}}),
		common(tenant.Object{Type: tenant.TypeRoles, ID: "0b3c1b13-b260-453c-ac8d-8053a537d610", ParentID: webID,
			Roles: []tenant.Role{
				{RoleID: 1073741825, Title: "Limited Access", Description: "Can view specific lists.", PermMask: "134418529", Hidden: true, RoleOrder: 160, Type: 1},
				{RoleID: 1073741829, Title: "Full Control", Description: "Has full control.", PermMask: "9223372036854775807", RoleOrder: 1, Type: 5},
			}}),
		common(tenant.Object{Type: tenant.TypeRoleAssignments, ID: "373ea0ba-107a-4a78-9563-bc642f9ab14d", ParentID: webID,
			RoleAssignments: []tenant.RoleAssignment{
				{ScopeID: scopeID, RoleDefWebID: webID, RoleDefWebURL: "", ObjectID: libID, ObjectType: 1,
					ObjectURL: "Shared Documents", Assignments: []tenant.Assignment{{RoleID: 1073741829, PrincipalID: 3}, {RoleID: 1073741825, PrincipalID: 5}}},
				{ScopeID: itemScope, RoleDefWebID: webID, ObjectID: fileID, ObjectType: 2,
					ObjectURL: "Shared Documents/Reports/Q1 & Q2 <draft>.docx"},
			}}),
	}
}

func fixtureUsers() []tenant.User {
	return []tenant.User{
		{ID: 12, Name: "Tenant Admin User", Login: "i:0#.f|membership|admin@contoso.onmicrosoft.com", Email: "admin@contoso.onmicrosoft.com",
			SystemID: "aTowaC5mfG1lbWJlcnNoaXB8MTAwM2JmZmRhYjZmODEzM0BsaXZlLmNvbQ==", IsSiteAdmin: true},
		{ID: 18, Name: "Zoë O'Brien", Login: "i:0#.f|membership|zoe@contoso.onmicrosoft.com", Email: "zoe@contoso.onmicrosoft.com",
			SystemID: "aTowaC5mfG1lbWJlcnNoaXB8MTAwM2JmZmQ5ZDZmNTM0ZkBsaXZlLmNvbQ==", IsDeleted: true, Flags: 144},
	}
}

func fixtureGroups() []tenant.Group {
	return []tenant.Group{
		{ID: 3, Name: "HR Owners", Owner: 3, Members: []int{12, 1073741823}},
		{ID: 5, Name: "HR Members", Description: "Members of HR", Owner: 1073741823, OwnerIsUser: true},
	}
}

func fixtureOptions() Options {
	return Options{
		JobID:       jobID,
		SiteURL:     "https://contoso.sharepoint.com/sites/hr",
		ReadOptions: tenant.ReadOptions{IncludeVersions: true, IncludePermission: true, StartChangeToken: "1;3;" + libID + ";638400000000000000;100"},
		ChangeToken: "1;3;" + libID + ";638500000000000000;142",
		Targets: []Root{{ID: libID, Type: "List", ParentID: webID, URL: "https://contoso.sharepoint.com" + libURL,
			WebID: webID, WebURL: webURL}},
	}
}

// writePackage runs a Writer over objs and returns the sink.
func writePackage(t testing.TB, opts Options, objs []*tenant.Object, users []tenant.User, groups []tenant.Group) *memSink {
	t.Helper()
	sink := &memSink{}
	writePackageTo(t, sink, opts, objs, users, groups)
	return sink
}

// writePackageTo runs a Writer over objs into sink and returns it, closed.
func writePackageTo(t testing.TB, sink Sink, opts Options, objs []*tenant.Object, users []tenant.User, groups []tenant.Group) *Writer {
	t.Helper()
	w, err := NewWriter(context.Background(), sink, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := w.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(users, groups); err != nil {
		t.Fatal(err)
	}
	return w
}

// fileObjects are n small files of the fixture's library.
func fileObjects(n int) []*tenant.Object {
	var objs []*tenant.Object
	for i := range n {
		objs = append(objs, &tenant.Object{Type: tenant.TypeFile, ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			ParentID: rootID, Name: fmt.Sprintf("file-%d.txt", i), ListID: libID, WebID: webID, WebURL: webURL,
			ServerURL: fmt.Sprintf("%s/file-%d.txt", libURL, i), WebRelURL: fmt.Sprintf("Shared Documents/file-%d.txt", i),
			IntID: i + 1, Version: "1.0", Size: int64(i), Created: created, Modified: modified})
	}
	return objs
}

// element is one parsed element: its local name, namespace and attributes in document order.
type element struct {
	name, space string
	attrs       []xml.Attr
	depth       int
}

func (e element) attr(name string) (string, bool) {
	for _, a := range e.attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// decodedAttr returns an attribute's value, decoded when the element lists it in EncodedAttributes.
func (e element) decodedAttr(name string) string {
	v, _ := e.attr(name)
	list, _ := e.attr("EncodedAttributes")
	for _, n := range strings.Split(list, ",") {
		if n == name {
			return decodeName(v)
		}
	}
	return v
}

// parseXML decodes data completely with encoding/xml (strict: well-formedness, legal characters,
// entity references) and returns its elements.
func parseXML(data []byte) ([]element, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var out []element
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if depth != 0 {
				return nil, fmt.Errorf("unexpected EOF at depth %d", depth)
			}
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			out = append(out, element{name: tok.Name.Local, space: tok.Name.Space, attrs: tok.Attr, depth: depth})
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) != 0 {
				return nil, fmt.Errorf("unexpected text %q", tok)
			}
		case xml.Directive:
			return nil, fmt.Errorf("unexpected directive %q", tok)
		}
	}
}
