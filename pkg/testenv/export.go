package testenv

// This file exports a simulated tenant the way the simulator's AMR jobs do (services/spsim/export)
// and parses the package with the pipeline's parser (pkg/sharepoint/manifest): the records a
// downstream consumer receives, without the pipeline in between.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/export"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// memorySink keeps a package's files in order.
type memorySink struct{ files []PackageFile }

func (s *memorySink) Put(_ context.Context, name string, data []byte, _ map[string]*string) error {
	s.files = append(s.files, PackageFile{Name: name, Data: bytes.Clone(data)})
	return nil
}

// PackageFile is one file of an AMR job's package, as the job stores it (unencrypted).
type PackageFile struct {
	Name string // the blob's name: the job's id, a slash, the file's name
	Data []byte
}

// ExportPackage is the package one AMR job over targets (server-relative URLs of one site
// collection) with opts stores, as the simulator writes it (unencrypted), in the package's order.
// opts.StartChangeToken makes it incremental.
func ExportPackage(ctx context.Context, tn *tenant.Tenant, jobID string, targets []string, opts tenant.ReadOptions) ([]PackageFile, error) {
	ts, err := resolveAll(tn, targets)
	if err != nil {
		return nil, err
	}
	roots := make([]export.Root, len(ts))
	for i, t := range ts {
		roots[i] = export.Root{ID: t.ID, Type: string(t.Kind), ParentID: t.ParentID, URL: targets[i], WebID: t.WebID, WebURL: t.WebURL}
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("export %s: no targets", jobID)
	}
	sink := &memorySink{}
	w, err := export.NewWriter(ctx, sink, export.Options{JobID: jobID, SiteURL: "https://contoso.sharepoint.com" + ts[0].WebURL,
		ReadOptions: opts, ChangeToken: tn.CurrentChangeToken(ts[0]), Targets: roots})
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
		return nil, fmt.Errorf("export %s: %w", jobID, err)
	}
	var users []tenant.User
	var groups []tenant.Group
	switch {
	case opts.IncludeSecurity:
		users, groups, _ = tn.Security(ts[0].SiteID)
	case opts.IncludePermission:
		users, groups = tn.Principals(ts[0].SiteID, principals)
	}
	if err := w.Close(users, groups); err != nil {
		return nil, fmt.Errorf("export %s: %w", jobID, err)
	}
	return sink.files, nil
}

// ExportRecords is what one AMR job over targets (server-relative URLs of one site collection)
// with opts yields downstream: the simulator writes the package (unencrypted) as its job would
// (ExportPackage) and the parser reads every file of it, in the package's order.
func ExportRecords(ctx context.Context, tn *tenant.Tenant, jobID string, targets []string, opts tenant.ReadOptions) ([]*amrpipev1.Record, error) {
	files, err := ExportPackage(ctx, tn, jobID, targets, opts)
	if err != nil {
		return nil, err
	}
	var recs []*amrpipev1.Record
	for _, f := range files {
		file := f.Name[strings.LastIndexByte(f.Name, '/')+1:]
		err := manifest.Parse(ctx, bytes.NewReader(f.Data), manifest.Options{JobID: jobID, SourceFile: file},
			func(r *amrpipev1.Record) error { recs = append(recs, r); return nil })
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", f.Name, err)
		}
	}
	return recs, nil
}

// hrFullRead reads targets of the default tenant's HR site as a full pass of the demo does
// (versions, permissions, the site's security), through f: ExportPackage or ExportRecords.
func hrFullRead[T any](tb testing.TB, targets []string,
	f func(context.Context, *tenant.Tenant, string, []string, tenant.ReadOptions) (T, error)) T {
	tb.Helper()
	tn, err := tenant.New(tenant.DefaultProfile())
	if err != nil {
		tb.Fatal(err)
	}
	out, err := f(context.Background(), tn, "bench", targets, tenant.ReadOptions{IncludeVersions: true, IncludePermission: true, IncludeSecurity: true})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// HRPackage is the parser benchmarks' input: the package one AMR job stores for a full read of
// the default tenant's HR library (72 MB in ten files, about 45,000 records).
func HRPackage(tb testing.TB) []PackageFile {
	return hrFullRead(tb, []string{"/sites/hr/Shared Documents"}, ExportPackage)
}

// HRRecords is the inventory benchmarks' input: the records of a full read of the default
// tenant's HR library and its task list, as one AMR job yields them (47,928 records: files and
// list items with versions, folders, role assignments, users and groups).
func HRRecords(tb testing.TB) []*amrpipev1.Record {
	return hrFullRead(tb, []string{"/sites/hr/Shared Documents", "/sites/hr/Lists/Onboarding Tasks"}, ExportRecords)
}
