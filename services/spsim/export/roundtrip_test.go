package export_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/export"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// memSink keeps every blob, as the manifest container would.
type memSink struct {
	names []string
	blobs map[string][]byte
	meta  map[string]map[string]*string
}

func (m *memSink) Put(_ context.Context, name string, data []byte, md map[string]*string) error {
	m.names = append(m.names, name)
	m.blobs[name] = bytes.Clone(data)
	m.meta[name] = md
	return nil
}

// TestRoundTripThroughThePipelinesDecrypterAndParser exports a whole small tenant the way the
// simulator does and reads it back with the pipeline's own decrypter (pkg/crypto/aescbc) and parser
// (pkg/sharepoint/manifest): every SPObject comes back once, with its names and URLs decoded and its versions.
func TestRoundTripThroughThePipelinesDecrypterAndParser(t *testing.T) {
	tn, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	site := tn.Sites()[0]
	lists, err := tn.Lists(site.ServerRelativeURL)
	if err != nil {
		t.Fatal(err)
	}
	var targets []tenant.Target
	for _, l := range lists {
		tg, err := tn.Resolve(l.RootFolderURL)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	opts := tenant.ReadOptions{IncludeVersions: true, IncludePermission: true, IncludeExtendedMetadata: true}
	sink := &memSink{blobs: map[string][]byte{}, meta: map[string]map[string]*string{}}
	w, err := export.NewWriter(ctx, sink, export.Options{JobID: "job", SiteURL: "https://contoso.sharepoint.com" + site.ServerRelativeURL,
		Key: key, MaxManifestBytes: 256 << 10, ReadOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*tenant.Object{}
	err = tn.Walk(ctx, targets, opts, func(o *tenant.Object) error {
		c := *o
		want[o.ID] = &c
		return w.Add(o)
	})
	if err != nil {
		t.Fatal(err)
	}
	users, groups, _ := tn.Security(site.ID)
	if err := w.Close(users, groups); err != nil {
		t.Fatal(err)
	}

	got := map[string]*amrpipev1.Record{}
	principals := 0
	for _, name := range sink.names {
		iv, err := aescbc.IVFromMetadata(sink.meta[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r, err := aescbc.NewReader(bytes.NewReader(sink.blobs[name]), key, iv, aescbc.WithExpect(aescbc.ExpectXML))
		if err != nil {
			t.Fatal(err)
		}
		p := manifest.NewParser(r, manifest.Options{JobID: "job", SourceFile: strings.TrimPrefix(name, "job/")})
		for {
			rec, err := p.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			switch {
			case rec.GetUser() != nil || rec.GetGroup() != nil:
				principals++
			case rec.GetFile() != nil || rec.GetFolder() != nil || rec.GetListItem() != nil || rec.GetList() != nil:
				if got[rec.GetObjectId()] != nil {
					t.Fatalf("object %s parsed twice", rec.GetObjectId())
				}
				got[rec.GetObjectId()] = rec
			}
		}
	}
	if principals != len(users)+len(groups) {
		t.Errorf("parsed %d users and groups, exported %d", principals, len(users)+len(groups))
	}
	checked := 0
	for id, o := range want {
		if o.Type == tenant.TypeRoles || o.Type == tenant.TypeRoleAssignments {
			delete(want, id)
			continue
		}
		rec := got[id]
		if rec == nil {
			t.Fatalf("%s %s (%q) missing after the round trip", o.Type, id, o.Name)
		}
		if rec.GetObjectType() != string(o.Type) {
			t.Fatalf("%s: type %s, want %s", id, rec.GetObjectType(), o.Type)
		}
		if f := rec.GetFile(); f != nil {
			checked++
			if f.GetName() != o.Name || f.GetUrl() != o.WebRelURL || f.GetFileSize() != o.Size || f.GetVersion() != o.Version {
				t.Fatalf("file %s: got name %q url %q size %d version %q; want %q %q %d %q",
					id, f.GetName(), f.GetUrl(), f.GetFileSize(), f.GetVersion(), o.Name, o.WebRelURL, o.Size, o.Version)
			}
			if !f.GetTimeLastModified().AsTime().Equal(o.Modified.Truncate(1e9)) && !f.GetTimeLastModified().AsTime().Equal(o.Modified) {
				t.Fatalf("file %s: modified %v, want %v", id, f.GetTimeLastModified().AsTime(), o.Modified)
			}
			if len(f.GetVersions()) != len(o.Versions) {
				t.Fatalf("file %s: %d versions, want %d", id, len(f.GetVersions()), len(o.Versions))
			}
		}
	}
	if len(got) != len(want) || checked == 0 {
		t.Fatalf("parsed %d objects, exported %d (%d files checked)", len(got), len(want), checked)
	}
}
