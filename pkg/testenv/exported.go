package testenv

// This file exports a tenant's objects as the simulator exports a job (services/spsim/export) and
// reads the package back with the pipeline's parser (pkg/sharepoint/manifest): the records a job
// over the targets yields, without JetStream, Azurite or the stages.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/export"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// memPackage keeps a job's package files in order.
type memPackage struct {
	names []string
	blobs map[string][]byte
}

func (m *memPackage) Put(_ context.Context, name string, data []byte, _ map[string]*string) error {
	m.names = append(m.names, name)
	m.blobs[name] = bytes.Clone(data)
	return nil
}

// ExportRecords is what one unencrypted AMR job over targets (server-relative URLs of one site
// collection) yields as records: the tenant walked and written as the simulator writes a package,
// each file parsed by the pipeline's parser. With IncludeSecurity every user and group of the site
// is in UserGroup.xml, with IncludePermission only those the role assignments name.
func ExportRecords(ctx context.Context, tn *tenant.Tenant, jobID string, targets []string, opts tenant.ReadOptions) ([]*amrpipev1.Record, error) {
	if len(targets) == 0 {
		return nil, errors.New("export records: no target")
	}
	site, err := tn.SiteOf(targets[0])
	if err != nil {
		return nil, err
	}
	var ts []tenant.Target
	var roots []export.Root
	for _, u := range targets {
		t, err := tn.Resolve(u)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", u, err)
		}
		ts = append(ts, t)
		roots = append(roots, export.Root{ID: t.ID, Type: string(t.Kind), ParentID: t.ParentID, URL: t.ServerRelativeURL, WebID: t.WebID, WebURL: t.WebURL})
	}
	pkg := &memPackage{blobs: map[string][]byte{}}
	w, err := export.NewWriter(ctx, pkg, export.Options{JobID: jobID, SiteURL: "https://contoso.sharepoint.com" + site.ServerRelativeURL,
		ReadOptions: opts, Targets: roots, MaxManifestBytes: 1 << 20})
	if err != nil {
		return nil, err
	}
	var principals []int
	err = tn.Walk(ctx, ts, opts, func(o *tenant.Object) error {
		for _, ra := range o.RoleAssignments {
			for _, a := range ra.Assignments {
				principals = append(principals, a.PrincipalID)
			}
		}
		return w.Add(o)
	})
	if err != nil {
		return nil, err
	}
	var users []tenant.User
	var groups []tenant.Group
	switch {
	case opts.IncludeSecurity:
		users, groups, _ = tn.Security(site.ID)
	case opts.IncludePermission:
		users, groups = tn.Principals(site.ID, principals)
	}
	if err := w.Close(users, groups); err != nil {
		return nil, err
	}
	var out []*amrpipev1.Record
	for _, name := range pkg.names {
		file := strings.TrimPrefix(name, jobID+"/")
		p := manifest.NewParser(bytes.NewReader(pkg.blobs[name]), manifest.Options{JobID: jobID, SourceFile: file})
		for {
			rec, err := p.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			out = append(out, rec)
		}
	}
	return out, nil
}
