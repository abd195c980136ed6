package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// millionFolder finds a folder of the default profile with over a million files below it.
func millionFolder(t *testing.T, tn *tenant.Tenant) tenant.Folder {
	t.Helper()
	for _, site := range tn.Sites() {
		lists, err := tn.Lists(site.ServerRelativeURL)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lists {
			subs, err := tn.Subfolders(l.RootFolderURL)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range subs {
				if f.SMTotalFileCount > 1_000_000 {
					return f
				}
			}
		}
	}
	t.Fatal("the default profile has no folder over 1M items")
	return tenant.Folder{}
}

func TestShallowJobOnMillionItemFolder(t *testing.T) {
	s := newSim(t, tenant.DefaultProfile(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	big := millionFolder(t, s.tenant)
	web, err := s.tenant.WebOf(big.ServerRelativeURL)
	if err != nil {
		t.Fatal(err)
	}
	site := s.site(web.ServerRelativeURL)
	rw := containerSAS(t, "shallow", sas.ContainerPermissions{Read: true, Write: true})
	info, err := s.client.CreateSPAsyncReadJob(ctx, site, spo.ReadJobRequest{
		URL: s.http.URL + big.ServerRelativeURL, ManifestContainerURI: rw,
		Options: spo.ReadOptions{IncludeDirectDescendantsOnly: true, IncludeSecurity: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	events := s.events(ctx, site, info.JobID)
	got, _ := manifestObjects(t, ctx, rw, nil, events)
	want := s.truth(info.JobID)
	diff(t, got, want)
	subs, err := s.tenant.Subfolders(big.ServerRelativeURL)
	if err != nil {
		t.Fatal(err)
	}
	// The probe yields the folder, its direct subfolders and its direct files, each SPFolder/SPFile
	// with its SPListItem: nothing from deeper down.
	wantObjects := 2 * (1 + big.ItemCount)
	if len(want) != wantObjects {
		t.Fatalf("shallow job yields %d objects, want %d (folder + %d direct children, 2 objects each)", len(want), wantObjects, big.ItemCount)
	}
	var below int64
	for _, f := range subs {
		below += f.SMTotalFileCount
	}
	if below+int64(big.ItemCount-len(subs)) != big.SMTotalFileCount {
		t.Fatalf("subfolder totals %d + direct files %d != folder total %d", below, big.ItemCount-len(subs), big.SMTotalFileCount)
	}
}

func TestProgressPagingResumesFromSavedToken(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), func(c *server.Config) { c.ProgressPageSize = 3; c.MaxManifestBytes = 64 << 10 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	site, lib := firstLibrary(t, s.tenant)
	siteURL := s.site(site.ServerRelativeURL)
	rw := containerSAS(t, "paging", sas.ContainerPermissions{Read: true, Write: true})
	info, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, spo.ReadJobRequest{URL: s.http.URL + lib.RootFolderURL, ManifestContainerURI: rw})
	if err != nil {
		t.Fatal(err)
	}
	all := s.events(ctx, siteURL, info.JobID)
	if len(all) < 8 {
		t.Fatalf("only %d events; want enough to page", len(all))
	}
	// First reader takes two pages and saves its cursor; a second reader (a restarted relay) resumes.
	p1, err := s.client.GetMigrationJobProgress(ctx, siteURL, info.JobID, "0")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.client.GetMigrationJobProgress(ctx, siteURL, info.JobID, p1.NextToken)
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.Logs) != 3 || len(p2.Logs) != 3 {
		t.Fatalf("pages of %d and %d events, want 3 each", len(p1.Logs), len(p2.Logs))
	}
	saved := p2.NextToken
	var rest []string
	for token := saved; ; {
		p, err := s.client.GetMigrationJobProgress(ctx, siteURL, info.JobID, token)
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, p.Logs...)
		if p.NextToken == token {
			if len(p.Logs) != 0 {
				t.Fatal("same token came back with events")
			}
			break
		}
		token = p.NextToken
	}
	seen := append(append(append([]string{}, p1.Logs...), p2.Logs...), rest...)
	if len(seen) != len(all) {
		t.Fatalf("resumed reading saw %d events, want %d", len(seen), len(all))
	}
	for i := range seen {
		if fmt.Sprint(all[i]) != fmt.Sprint(decode(t, seen[i])) {
			t.Fatalf("event %d differs after resuming", i)
		}
	}
}

func TestIncrementalJobYieldsExactlyTheChanges(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	site, lib := firstLibrary(t, s.tenant)
	siteURL := s.site(site.ServerRelativeURL)
	rw := containerSAS(t, "incremental", sas.ContainerPermissions{Read: true, Write: true})
	req := spo.ReadJobRequest{URL: s.http.URL + lib.RootFolderURL, ManifestContainerURI: rw}
	first, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, req)
	if err != nil {
		t.Fatal(err)
	}
	s.events(ctx, siteURL, first.JobID)
	s.admin(http.MethodPost, "mutate", map[string]int{"changes": 40})
	req.Options.StartChangeToken = first.CurrentChangeToken
	second, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, req)
	if err != nil {
		t.Fatal(err)
	}
	if second.CurrentChangeToken == first.CurrentChangeToken {
		t.Fatal("change token did not move after changes")
	}
	got, _ := manifestObjects(t, ctx, rw, nil, s.events(ctx, siteURL, second.JobID))
	want := s.truth(second.JobID)
	diff(t, got, want)
	full := s.truth(first.JobID)
	if len(want) == 0 || len(want) >= len(full) {
		t.Fatalf("incremental job yields %d objects of %d: want only the changed ones", len(want), len(full))
	}
	// A third pass from the newest token sees nothing new.
	req.Options.StartChangeToken = second.CurrentChangeToken
	third, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, req)
	if err != nil {
		t.Fatal(err)
	}
	s.events(ctx, siteURL, third.JobID)
	if n := len(s.truth(third.JobID)); n != 0 {
		t.Fatalf("pass with the newest token yields %d objects, want 0", n)
	}
}

func TestJobFaults(t *testing.T) {
	tests := []struct {
		fault      server.Rule
		wantEvents []string // must appear, in this order
	}{
		{server.Rule{Job: "postponed", Delay: 50 * time.Millisecond, Times: 1}, []string{"JobQueued", "JobPostponed", "JobStart", "JobEnd"}},
		{server.Rule{Job: "fatal", Times: 1}, []string{"JobQueued", "JobStart", "JobFatalError", "JobEnd"}},
		{server.Rule{Job: "truncated-upload", Times: 1}, []string{"JobStart", "FinishManifestFileUpload", "JobEnd"}},
	}
	for _, tt := range tests {
		t.Run(tt.fault.Job, func(t *testing.T) {
			s := newSim(t, tenant.SmallProfile(), func(c *server.Config) { c.Faults = []server.Rule{tt.fault} })
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			site, lib := firstLibrary(t, s.tenant)
			siteURL := s.site(site.ServerRelativeURL)
			rw := containerSAS(t, "faults", sas.ContainerPermissions{Read: true, Write: true})
			info, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, spo.ReadJobRequest{URL: s.http.URL + lib.RootFolderURL, ManifestContainerURI: rw, EncryptionKey: newAESKey(t)})
			if err != nil {
				t.Fatal(err)
			}
			events := s.events(ctx, siteURL, info.JobID)
			i := 0
			for _, ev := range events {
				if i < len(tt.wantEvents) && ev["Event"] == tt.wantEvents[i] {
					i++
				}
			}
			if i != len(tt.wantEvents) {
				names := make([]string, len(events))
				for k, ev := range events {
					names[k] = ev["Event"]
				}
				t.Fatalf("events %v, want the sequence %v", names, tt.wantEvents)
			}
		})
	}
}

func TestCrossWebMultiURLJobFailsLikeSharePoint(t *testing.T) {
	s := newSim(t, tenant.DefaultProfile(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var root, sub tenant.List
	var siteURL string
	for _, site := range s.tenant.Sites() {
		webs, err := s.tenant.Subwebs(site.ServerRelativeURL)
		if err != nil || len(webs) == 0 {
			continue
		}
		a, _ := s.tenant.Lists(site.ServerRelativeURL)
		b, _ := s.tenant.Lists(webs[0].ServerRelativeURL)
		if len(a) > 0 && len(b) > 0 {
			root, sub, siteURL = a[0], b[0], s.site(site.ServerRelativeURL)
			break
		}
	}
	if root.ID == "" {
		t.Fatal("default profile has no site with a subweb holding lists")
	}
	rw := containerSAS(t, "crossweb", sas.ContainerPermissions{Read: true, Write: true})
	info, err := s.client.CreateSPAsyncReadJobWithMultiUrl(ctx, siteURL, []string{s.http.URL + root.RootFolderURL, s.http.URL + sub.RootFolderURL},
		spo.ReadJobRequest{ManifestContainerURI: rw})
	if err != nil {
		t.Fatalf("SharePoint accepts a cross-web multi-URL job and fails it later; got %v", err)
	}
	events := s.events(ctx, siteURL, info.JobID)
	found := false
	for _, ev := range events {
		if ev["Event"] == "JobFatalError" {
			found = true
			if _, err := strconv.Atoi(ev["ErrorCode"]); err != nil {
				t.Errorf("ErrorCode %q is not a number", ev["ErrorCode"])
			}
		}
	}
	if !found {
		t.Fatal("no JobFatalError for a cross-web multi-URL job")
	}
}

func TestStatusAndDeleteOfARunningJob(t *testing.T) {
	// A slow export (200 objects/s) so the job is still running when it is deleted.
	s := newSim(t, tenant.SmallProfile(), func(c *server.Config) { c.Rate = 200 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	site, lib := firstLibrary(t, s.tenant)
	siteURL := s.site(site.ServerRelativeURL)
	rw := containerSAS(t, "delete", sas.ContainerPermissions{Read: true, Write: true})
	info, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, spo.ReadJobRequest{URL: s.http.URL + lib.RootFolderURL, ManifestContainerURI: rw})
	if err != nil {
		t.Fatal(err)
	}
	for {
		st, err := s.client.GetMigrationJobStatus(ctx, siteURL, info.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if st == spo.JobProcessing {
			break
		}
		if st != spo.JobQueued {
			t.Fatalf("status %v before the job ran, want Queued then Processing", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ok, err := s.client.DeleteMigrationJob(ctx, siteURL, info.JobID)
	if err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	events := s.events(ctx, siteURL, info.JobID)
	var names []string
	for _, ev := range events {
		names = append(names, ev["Event"])
	}
	if len(names) < 2 || names[len(names)-2] != "JobCancelled" || names[len(names)-1] != "JobEnd" {
		t.Fatalf("events %v, want JobCancelled then JobEnd at the end", names)
	}
	if st, err := s.client.GetMigrationJobStatus(ctx, siteURL, info.JobID); err != nil || st != spo.JobNone {
		t.Fatalf("status after delete %v %v, want None", st, err)
	}
}

func TestProvisionMigrationContainers(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	site, lib := firstLibrary(t, s.tenant)
	siteURL := s.site(site.ServerRelativeURL)
	c, err := s.client.ProvisionMigrationContainers(ctx, siteURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.EncryptionKey) != 32 {
		t.Fatalf("key of %d bytes, want 32", len(c.EncryptionKey))
	}
	// The provisioned metadata container is good for a job, as SharePoint's are.
	info, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, spo.ReadJobRequest{URL: s.http.URL + lib.RootFolderURL,
		ManifestContainerURI: c.MetadataContainerURI, EncryptionKey: c.EncryptionKey})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := manifestObjects(t, ctx, c.MetadataContainerURI, c.EncryptionKey, s.events(ctx, siteURL, info.JobID))
	diff(t, got, s.truth(info.JobID))
}

// TestProcessedCallFaults: a create call that takes effect while its answer is lost (an error
// instead, a dropped connection, an answer later than the client waits) leaves exactly one job
// at the simulator, which runs and writes its manifests; a slow call gets its real answer late.
func TestProcessedCallFaults(t *testing.T) {
	tests := []struct {
		name      string
		fault     server.Rule
		timeout   time.Duration // the client's; 0: none
		wantError func(error) bool
	}{
		{name: "502 instead of the answer", fault: server.Rule{Status: http.StatusBadGateway},
			wantError: func(err error) bool {
				var se *spo.Error
				return errors.As(err, &se) && se.Status == http.StatusBadGateway
			}},
		{name: "connection dropped", fault: server.Rule{Drop: true},
			wantError: func(err error) bool { var te *spo.TransportError; return errors.As(err, &te) }},
		{name: "answer later than the client waits", fault: server.Rule{Status: http.StatusGatewayTimeout, Delay: 2 * time.Second}, timeout: 200 * time.Millisecond,
			wantError: func(err error) bool { var te *spo.TransportError; return errors.As(err, &te) }},
		{name: "slow real answer", fault: server.Rule{Delay: 100 * time.Millisecond},
			wantError: func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fault.Method, tt.fault.Processed, tt.fault.Times = "CreateSPAsyncReadJob", true, 1
			s := newSim(t, tenant.SmallProfile(), func(c *server.Config) { c.Faults = []server.Rule{tt.fault} })
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			site, lib := firstLibrary(t, s.tenant)
			name := "processed-" + strings.ToLower(strings.ReplaceAll(tt.name, " ", "-"))
			rw := containerSAS(t, name, sas.ContainerPermissions{Read: true, Write: true})
			client := s.client
			if tt.timeout > 0 {
				var err error
				client, err = spo.New(spo.Options{Tokens: spo.StaticToken(testToken), UserAgent: "ISV|amrpipe|spsim-test/1.0",
					HTTPClient: &http.Client{Timeout: tt.timeout}})
				if err != nil {
					t.Fatal(err)
				}
			}
			_, err := client.CreateSPAsyncReadJob(ctx, s.site(site.ServerRelativeURL), spo.ReadJobRequest{URL: s.http.URL + lib.RootFolderURL,
				ManifestContainerURI: rw})
			if !tt.wantError(err) {
				t.Fatalf("create call returned %v", err)
			}
			// The job exists all the same: its manifests arrive under one job folder.
			acct, err := storage.Account()
			if err != nil {
				t.Fatal(err)
			}
			var prefixes []string
			deadline := time.Now().Add(30 * time.Second)
			for len(prefixes) == 0 && time.Now().Before(deadline) {
				pager := acct.Blob().ServiceClient().NewContainerClient(name).NewListBlobsHierarchyPager("/", nil)
				for pager.More() {
					page, err := pager.NextPage(ctx)
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range page.Segment.BlobPrefixes {
						prefixes = append(prefixes, *p.Name)
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(prefixes) != 1 {
				t.Fatalf("job folders in the container: %v, want exactly one", prefixes)
			}
			jobID := strings.TrimSuffix(prefixes[0], "/")
			if evs := s.events(ctx, s.site(site.ServerRelativeURL), jobID); evs[0]["Event"] != "JobQueued" {
				t.Fatalf("job %s starts with %v", jobID, evs[0])
			}
		})
	}
}
