package export

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// packageFiles are the files Close writes after the manifest parts, in order, with their root
// element and namespace (amr-protocol.md §4).
var packageFiles = []struct{ file, root, ns string }{
	{"UserGroup.xml", "UserGroupMap", "urn:deployment-usergroupmap-schema"},
	{"ExportSettings.xml", "ExportSettings", "urn:deployment-exportsettings-schema"},
	{"RootObjectMap.xml", "RootObjects", "urn:deployment-rootobjectmap-schema"},
	{"LookupListMap.xml", "LookupLists", "urn:deployment-lookuplistmap-schema"},
	{"Requirements.xml", "Requirements", "urn:deployment-requirements-schema"},
	{"ViewFormsList.xml", "ViewFormsList", "urn:deployment-viewformlist-schema"},
	{"SystemData.xml", "SystemData", "urn:deployment-systemdata-schema"},
}

func TestGolden(t *testing.T) {
	sink := writePackage(t, fixtureOptions(), fixtureObjects(), fixtureUsers(), fixtureGroups())
	for _, b := range sink.blobs {
		file := strings.TrimPrefix(b.name, jobID+"/")
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", "golden", file)
			if *update {
				if err := os.WriteFile(path, b.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(b.data, want) {
				t.Errorf("%s differs from %s (run go test -update and review the diff):\n%s", b.name, path, b.data)
			}
		})
	}
}

func TestPackageFilesAreWellFormed(t *testing.T) {
	tests := []struct {
		name   string
		objs   []*tenant.Object
		users  []tenant.User
		groups []tenant.Group
		opts   func(*Options)
	}{
		{name: "fixture", objs: fixtureObjects(), users: fixtureUsers(), groups: fixtureGroups()},
		{name: "empty job", opts: func(o *Options) { o.Targets, o.ChangeToken = nil, "" }},
		{name: "encrypted", objs: fixtureObjects(), users: fixtureUsers(), opts: func(o *Options) { o.Key = testKey() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := fixtureOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			sink := writePackage(t, opts, tt.objs, tt.users, tt.groups)
			want := []string{jobID + "/Manifest.xml"}
			for _, f := range packageFiles {
				want = append(want, jobID+"/"+f.file)
			}
			if got := sink.names(); !slices.Equal(got, want) {
				t.Fatalf("blobs = %v, want %v", got, want)
			}
			roots := append([]struct{ file, root, ns string }{{"Manifest.xml", "SPObjects", "urn:deployment-manifest-schema"}}, packageFiles...)
			for _, r := range roots {
				b := sink.get(t, jobID+"/"+r.file)
				data := b.data
				if opts.Key != nil {
					data = decryptBlob(t, opts.Key, b)
				}
				if !bytes.HasPrefix(data, []byte(`<?xml version="1.0" encoding="utf-8"?>`)) {
					t.Errorf("%s: no XML declaration", r.file)
				}
				els, err := parseXML(data)
				if err != nil {
					t.Fatalf("%s: not well-formed: %v\n%s", r.file, err, data)
				}
				if els[0].name != r.root || els[0].space != r.ns {
					t.Errorf("%s: root {%s}%s, want {%s}%s", r.file, els[0].space, els[0].name, r.ns, r.root)
				}
			}
		})
	}
}

// TestFolderTotalsOnlyWhenAsked: a folder's list item carries SMTotalFileCount and SMTotalSize only
// with Options.FolderTotals (whether AMR writes them is not documented), never a folder count, and
// a file's item never carries them.
func TestFolderTotalsOnlyWhenAsked(t *testing.T) {
	objs := fixtureObjects()
	tests := []struct {
		name   string
		totals bool
		id     string // the list item
		want   []string
	}{
		{"folder, default", false, "9c1d2e3f-0000-4000-8000-000000000001", nil},
		{"folder, totals asked", true, "9c1d2e3f-0000-4000-8000-000000000001", []string{"SMTotalFileCount=1", "SMTotalSize=17662"}},
		{"file, totals asked", true, "9c1d2e3f-0000-4000-8000-000000000002", []string{"Title=Quarterly \"numbers\"", "Pages=12"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := fixtureOptions()
			opts.FolderTotals = tt.totals
			els, err := parseXML(writePackage(t, opts, objs, nil, nil).get(t, jobID+"/Manifest.xml").data)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			in := false
			for _, e := range els {
				switch {
				case e.name == "ListItem" && e.depth == 2:
					id, _ := e.attr("Id")
					in = id == tt.id
				case in && e.name == "Field":
					name, _ := e.attr("Name")
					got = append(got, name+"="+e.decodedAttr("Value"))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("fields %q, want %q", got, tt.want)
			}
		})
	}
}

func TestManifestContent(t *testing.T) {
	objs := fixtureObjects()
	sink := writePackage(t, fixtureOptions(), objs, nil, nil)
	els, err := parseXML(sink.get(t, jobID+"/Manifest.xml").data)
	if err != nil {
		t.Fatal(err)
	}
	var spObjects []element
	for _, e := range els {
		if e.name == "SPObject" {
			spObjects = append(spObjects, e)
		}
	}
	if len(spObjects) != len(objs) {
		t.Fatalf("%d SPObjects, want %d", len(spObjects), len(objs))
	}
	for i, o := range objs {
		e := spObjects[i]
		if id, _ := e.attr("Id"); id != o.ID {
			t.Errorf("SPObject %d: Id %s, want %s", i, id, o.ID)
		}
		if typ, _ := e.attr("ObjectType"); typ != string(o.Type) {
			t.Errorf("SPObject %s: ObjectType %s, want %s", o.ID, typ, o.Type)
		}
		if deleted, _ := e.attr("IsDeleted"); (deleted == "true") != o.IsDeleted {
			t.Errorf("SPObject %s: IsDeleted=%q, object deleted %v", o.ID, deleted, o.IsDeleted)
		}
		if o.ServerURL != "" && e.decodedAttr("Url") != o.ServerURL {
			t.Errorf("SPObject %s: Url %q, want server-relative %q", o.ID, e.decodedAttr("Url"), o.ServerURL)
		}
	}
	// Spot checks of what a consumer reads, against the protocol notes.
	checks := []struct {
		element, key, keyValue, attr, want string
	}{
		{"File", "Id", fileID, "Url", "Shared Documents/Reports/Q1 & Q2 <draft>.docx"},
		{"File", "Id", fileID, "TimeCreated", "2023-05-11T05:19:48"},
		{"File", "Id", fileID, "Author", "12"},
		{"File", "Id", fileID, "ContentVersion", "4"},
		{"File", "Version", "2.1", "Level", "2"},
		{"File", "Version", "1.0", "CheckinComment", "first\ndraft"},
		{"ListItem", "Name", "Q1 & Q2 <draft>.docx", "DocId", fileID},
		{"ListItem", "Name", "Q1 & Q2 <draft>.docx", "DirName", "sites/hr/Shared Documents/Reports"},
		{"ListItem", "Name", "Q1 & Q2 <draft>.docx", "ModerationStatus", "Approved"},
		{"ListItem", "Name", "Reports", "DocId", folderID},
		{"Field", "Name", "Title", "Value", `Quarterly "numbers"`},
		{"DocumentLibrary", "Id", libID, "BaseTemplate", "DocumentLibrary"},
		{"List", "Id", listID, "BaseType", "GenericList"},
		{"Role", "RoleId", "1073741829", "PermMask", "9223372036854775807"},
		{"Assignment", "PrincipalId", "5", "RoleId", "1073741825"},
	}
	for _, c := range checks {
		found := false
		for _, e := range els {
			if v, ok := e.attr(c.key); e.name != c.element || !ok || v != c.keyValue {
				continue
			}
			found = true
			if got := e.decodedAttr(c.attr); got != c.want {
				t.Errorf("%s[%s=%s]/@%s = %q, want %q", c.element, c.key, c.keyValue, c.attr, got, c.want)
			}
			break
		}
		if !found {
			t.Errorf("no %s with %s=%s", c.element, c.key, c.keyValue)
		}
	}
}

func TestEncodedAttributes(t *testing.T) {
	tests := []struct {
		name        string
		fileName    string
		wantEncoded string // EncodedAttributes of the File element; "" = none
	}{
		{"slash and leading digit are plain XML", "2024/report.txt", ""},
		{"emoji is plain XML", "smile 😀.txt", ""},
		{"C0 control", "a\x01b.txt", "Url,ParentWebUrl,Name,Version"},
		{"U+FFFE", "x\uFFFE.txt", "Url,ParentWebUrl,Name,Version"},
		{"emoji with control", "1😀\x1f.txt", "Url,ParentWebUrl,Name,Version"},
		{"escape-like text with control", "_x0041_\x02", "Url,ParentWebUrl,Name,Version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &tenant.Object{Type: tenant.TypeFile, ID: fileID, ParentID: rootID, Name: tt.fileName, ListID: libID,
				WebID: webID, WebURL: webURL, ServerURL: libURL + "/" + tt.fileName,
				WebRelURL: "Shared Documents/" + tt.fileName, IntID: 7, Version: "1.0", Created: created, Modified: modified}
			sink := writePackage(t, fixtureOptions(), []*tenant.Object{o}, nil, nil)
			els, err := parseXML(sink.get(t, jobID+"/Manifest.xml").data)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]element{}
			for _, e := range els {
				byName[e.name] = e
			}
			file := byName["File"]
			if got, _ := file.attr("EncodedAttributes"); got != tt.wantEncoded {
				t.Errorf("File EncodedAttributes = %q, want %q", got, tt.wantEncoded)
			}
			want := map[string]string{"Url": o.WebRelURL, "ParentWebUrl": o.WebURL, "Name": o.Name, "Version": o.Version}
			for attr, v := range want {
				if got := file.decodedAttr(attr); got != v {
					t.Errorf("File/@%s decodes to %q, want %q", attr, got, v)
				}
			}
			if tt.wantEncoded != "" {
				if raw, _ := file.attr("Version"); raw != "_x0031_.0" {
					t.Errorf("encoded Version = %q, want _x0031_.0 as in the SharePoint sample", raw)
				}
			}
			sp := byName["SPObject"]
			if got := sp.decodedAttr("Url"); got != o.ServerURL {
				t.Errorf("SPObject/@Url decodes to %q, want %q", got, o.ServerURL)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	const limit = 4000
	tests := []struct {
		name string
		key  []byte
	}{
		{"plain", nil},
		{"encrypted", testKey()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := fileObjects(120)
			// One object bigger than the limit must go alone into its part.
			big := *objs[60]
			big.ID = "00000000-0000-4000-8000-bigbigbigbig"
			big.Extended = []tenant.Attr{{Name: "Padding", Value: strings.Repeat("p", 2*limit)}}
			objs = slices.Insert(objs, 60, &big)

			opts := fixtureOptions()
			opts.MaxManifestBytes, opts.Key = limit, tt.key
			sink := writePackage(t, opts, objs, nil, nil)

			var parts []string
			seen := map[string]int{}
			for _, b := range sink.blobs {
				file := strings.TrimPrefix(b.name, jobID+"/")
				if !strings.HasPrefix(file, "Manifest") {
					continue
				}
				want := "Manifest.xml"
				if n := len(parts); n > 0 {
					want = fmt.Sprintf("Manifest%d.xml", n)
				}
				if file != want {
					t.Fatalf("part %d named %s, want %s", len(parts), file, want)
				}
				parts = append(parts, file)
				data := b.data
				if tt.key != nil {
					data = decryptBlob(t, tt.key, b)
				}
				els, err := parseXML(data)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				var ids []string
				for _, e := range els {
					if e.name == "SPObject" {
						id, _ := e.attr("Id")
						ids = append(ids, id)
						seen[id]++
					}
				}
				if len(b.data) > limit && !slices.Equal(ids, []string{big.ID}) {
					t.Errorf("%s: %d bytes > limit %d with objects %v", file, len(b.data), limit, ids)
				}
			}
			if len(parts) < 3 {
				t.Fatalf("only %d parts", len(parts))
			}
			for _, o := range objs {
				if seen[o.ID] != 1 {
					t.Errorf("object %s appears %d times", o.ID, seen[o.ID])
				}
			}
			if len(seen) != len(objs) {
				t.Errorf("%d distinct objects, want %d", len(seen), len(objs))
			}
			sd := sink.get(t, jobID+"/SystemData.xml")
			data := sd.data
			if tt.key != nil {
				data = decryptBlob(t, tt.key, sd)
			}
			els, err := parseXML(data)
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, e := range els {
				if e.name == "ManifestFile" {
					name, _ := e.attr("Name")
					listed = append(listed, name)
				}
			}
			if !slices.Equal(listed, parts) {
				t.Errorf("SystemData lists %v, want %v", listed, parts)
			}
		})
	}
}

func TestWriterErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := NewWriter(ctx, &memSink{}, Options{JobID: jobID, Key: make([]byte, 16)}); err == nil {
		t.Error("a 16-byte key was accepted")
	}
	if _, err := NewWriter(ctx, &memSink{}, Options{}); err == nil {
		t.Error("an empty job id was accepted")
	}

	w, err := NewWriter(ctx, &memSink{}, fixtureOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(&tenant.Object{Type: "SPWeb", ID: webID}); err == nil {
		t.Error("unknown object type accepted")
	}
	if err := w.Close(nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(fixtureObjects()[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}

	boom := errors.New("storage down")
	sink := &memSink{fail: boom}
	w, err = NewWriter(ctx, sink, fixtureOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(nil, nil); !errors.Is(err, boom) || !strings.Contains(err.Error(), jobID+"/Manifest.xml") {
		t.Errorf("Close with failing sink: %v", err)
	}
	if len(w.Files()) != 0 {
		t.Errorf("Files() = %v after a failed Put", w.Files())
	}
}

func TestAppendTime(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"UTC", time.Date(2023, 5, 11, 5, 19, 48, 999, time.UTC), "2023-05-11T05:19:48"},
		{"converted to UTC", time.Date(2021, 1, 1, 1, 2, 3, 0, time.FixedZone("CET", 3600)), "2021-01-01T00:02:03"},
		{"year 1", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "0001-01-01T00:00:00"},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), "9999-12-31T23:59:59"},
		{"year 10000 falls back to time.Format", time.Date(10000, 1, 2, 3, 4, 5, 0, time.UTC), "10000-01-02T03:04:05"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendTime(nil, tt.in)); got != tt.want {
				t.Errorf("appendTime = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWriterInAnEarlierWritersBuffer: a server hands each export the buffer of one before
// (Options.Buffer, Writer.Buffer). The package written in it is the same, byte for byte, as in a
// new one, whatever the earlier writer left there, and the buffer is not grown again.
func TestWriterInAnEarlierWritersBuffer(t *testing.T) {
	objs := fileObjects(60)
	for _, key := range [][]byte{nil, testKey()} {
		opts := fixtureOptions()
		opts.MaxManifestBytes, opts.Key = 4000, key
		write := func(buf []byte) (*memSink, []byte) {
			opts.Buffer = buf
			opts.Rand = bytes.NewReader(bytes.Repeat([]byte{7}, 1<<10)) // the same IVs for both packages
			sink := &memSink{}
			w := writePackageTo(t, sink, opts, objs, fixtureUsers(), fixtureGroups())
			b := w.Buffer()
			if b == nil || w.Buffer() != nil {
				t.Fatal("Buffer after Close: want the buffer once")
			}
			return sink, b
		}
		first, buf := write(nil)
		// What the first package left in the buffer must not leak into the second.
		for i := range buf[:cap(buf)] {
			buf[:cap(buf)][i] = 'x'
		}
		second, again := write(buf)
		if len(first.blobs) != len(second.blobs) {
			t.Fatalf("encrypted=%v: %d files in a new buffer, %d in an earlier one", key != nil, len(first.blobs), len(second.blobs))
		}
		for i, b := range first.blobs {
			if c := second.blobs[i]; c.name != b.name || !bytes.Equal(c.data, b.data) || !reflect.DeepEqual(c.metadata, b.metadata) {
				t.Errorf("encrypted=%v: %s differs in an earlier writer's buffer", key != nil, b.name)
			}
		}
		if cap(again) != cap(buf) || &again[:1][0] != &buf[:1][0] {
			t.Errorf("encrypted=%v: the second writer grew a new buffer (cap %d, was %d)", key != nil, cap(again), cap(buf))
		}
	}
}
