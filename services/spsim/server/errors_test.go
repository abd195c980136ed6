package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// firstLibrary is a small library of the small profile, for quick jobs.
func firstLibrary(t *testing.T, tn *tenant.Tenant) (site tenant.Site, lib tenant.List) {
	t.Helper()
	for _, s := range tn.Sites() {
		lists, err := tn.Lists(s.ServerRelativeURL)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lists {
			if l.BaseTemplate == 101 {
				return s, l
			}
		}
	}
	t.Fatal("no library")
	return
}

func TestUnknownJobProgressIsDocumented500(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	site, _ := firstLibrary(t, s.tenant)
	// The raw wire answer, as curl would see it.
	req, err := http.NewRequest(http.MethodGet, s.site(site.ServerRelativeURL)+"/_api/site/GetMigrationJobProgress(jobId='0c6b3a3e-1111-4222-8333-944444444444',nextToken=0)", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Accept", "application/json;odata=verbose")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	var doc struct {
		Error struct {
			Code    string                       `json:"code"`
			Message struct{ Lang, Value string } `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if doc.Error.Code != "-2147213145, Microsoft.SharePoint.SPException" || doc.Error.Message.Value != "Job not found" {
		t.Fatalf("body %s, want the documented job-not-found error", body)
	}
}

func TestDocumentedErrorsAreTyped(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	site, lib := firstLibrary(t, s.tenant)
	siteURL := s.site(site.ServerRelativeURL)
	rw := containerSAS(t, "errors", sas.ContainerPermissions{Read: true, Write: true})
	libURL := s.http.URL + lib.RootFolderURL

	// A finished job to expire later.
	info, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, spo.ReadJobRequest{URL: libURL, ManifestContainerURI: rw})
	if err != nil {
		t.Fatal(err)
	}
	s.events(ctx, siteURL, info.JobID)

	fault := func(rules ...server.Rule) { s.admin(http.MethodPost, "faults", map[string]any{"rules": rules}) }
	tests := []struct {
		name  string
		setup func()
		call  func() error
		want  error
		check func(t *testing.T, err error)
	}{
		{name: "job not found", want: spo.ErrJobNotFound, call: func() error {
			_, err := s.client.GetMigrationJobProgress(ctx, siteURL, "0c6b3a3e-1111-4222-8333-944444444444", "")
			return err
		}},
		{name: "operation canceled", want: spo.ErrOperationCanceled,
			setup: func() {
				fault(server.Rule{Method: "GetMigrationJobStatus", Status: 500, Code: -2147213196, Message: "Operation canceled", Times: 1})
			},
			call: func() error { _, err := s.client.GetMigrationJobStatus(ctx, siteURL, info.JobID); return err }},
		{name: "throttled 429 with Retry-After", want: spo.ErrThrottled,
			setup: func() { fault(server.Rule{Method: "*", Status: 429, RetryAfter: "7", Times: 1}) },
			call:  func() error { _, err := s.client.Lists(ctx, siteURL); return err },
			check: func(t *testing.T, err error) {
				var se *spo.Error
				if !errors.As(err, &se) || se.RetryAfter != 7*time.Second || !se.Throttled() {
					t.Fatalf("err %#v: want RetryAfter 7s, throttled", err)
				}
			}},
		{name: "503 waits its Retry-After, not a larger RateLimit-Reset", want: spo.ErrThrottled,
			setup: func() { fault(server.Rule{Method: "*", Status: 503, RetryAfter: "2", RateLimitReset: "9", Times: 1}) },
			call:  func() error { _, err := s.client.Lists(ctx, siteURL); return err },
			check: func(t *testing.T, err error) {
				var se *spo.Error
				if !errors.As(err, &se) || se.RetryAfter != 2*time.Second || se.RateLimit.Reset != 9*time.Second {
					t.Fatalf("err %#v: want RetryAfter 2s (RateLimit-Reset 9s kept aside)", err)
				}
			}},
		{name: "500 stays a 500", want: nil,
			setup: func() { fault(server.Rule{Method: "*", Status: 500, Times: 1}) },
			call:  func() error { _, err := s.client.Lists(ctx, siteURL); return err },
			check: func(t *testing.T, err error) {
				var se *spo.Error
				if !errors.As(err, &se) || se.Status != 500 {
					t.Fatalf("err %v: want a 500", err)
				}
			}},
		{name: "403 access denied", want: spo.ErrAccessDenied,
			setup: func() { fault(server.Rule{Method: "*", Status: 403, Times: 1}) },
			call:  func() error { _, err := s.client.Lists(ctx, siteURL); return err }},
		{name: "wrong token", want: spo.ErrUnauthorized, call: func() error {
			bad, err := spo.New(spo.Options{Tokens: spo.StaticToken("wrong"), UserAgent: "ISV|amrpipe|spsim-test/1.0"})
			if err != nil {
				return err
			}
			_, err = bad.Lists(ctx, siteURL)
			return err
		}},
		{name: "change token older than 60 days", want: spo.ErrChangeTokenExpired,
			setup: func() {
				s.admin(http.MethodPost, "mutate", map[string]int{"changes": 5})
				s.admin(http.MethodPost, "clock", map[string]string{"advance": "1464h"}) // 61 days
			},
			call: func() error {
				_, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, spo.ReadJobRequest{URL: libURL, ManifestContainerURI: rw,
					Options: spo.ReadOptions{StartChangeToken: info.CurrentChangeToken}})
				return err
			}},
		{name: "job status expired", want: spo.ErrJobStatusExpired, call: func() error {
			// The clock moved 61 days in the previous case: far past the 5-day status retention.
			_, err := s.client.GetMigrationJobProgress(ctx, siteURL, info.JobID, "")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			err := tt.call()
			if err == nil {
				t.Fatal("call succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want errors.Is %v", err, tt.want)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "sig=") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestThrottlingIsHonoured(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	site, lib := firstLibrary(t, s.tenant)
	siteURL := s.site(site.ServerRelativeURL)
	rw := containerSAS(t, "throttled", sas.ContainerPermissions{Read: true, Write: true})
	s.admin(http.MethodPost, "faults", map[string]any{"rules": []server.Rule{
		{Method: "CreateSPAsyncReadJob", Status: 429, RetryAfter: "3", Times: 1},
		{Method: "CreateSPAsyncReadJob", Status: 503, RetryAfter: "5", Times: 1},
	}})
	var slept []time.Duration
	now := time.Now()
	clock := throttle.Clock{
		Now:   func() time.Time { return now },
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); now = now.Add(d); return nil },
	}
	p := throttle.DefaultPolicy(stage.Judge)
	p.Clock = clock
	calls := 0
	info, err := throttle.Do(ctx, throttle.NewLocal(clock), "127.0.0.1", p, func(ctx context.Context) (spo.ReadJobInfo, error) {
		calls++
		return s.client.CreateSPAsyncReadJob(ctx, siteURL, spo.ReadJobRequest{URL: s.http.URL + lib.RootFolderURL, ManifestContainerURI: rw})
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 3 || len(slept) != 2 || slept[0] != 3*time.Second || slept[1] != 5*time.Second {
		t.Fatalf("calls %d, sleeps %v: want 3 calls waiting exactly 3s then 5s", calls, slept)
	}
	if info.JobID == "" {
		t.Fatal("no job id")
	}
}

func TestSASRulesAreEnforced(t *testing.T) {
	s := newSim(t, tenant.SmallProfile(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	site, lib := firstLibrary(t, s.tenant)
	siteURL := s.site(site.ServerRelativeURL)
	rwl := containerSAS(t, "extraperms", sas.ContainerPermissions{Read: true, Write: true, List: true})
	ro := containerSAS(t, "readonly", sas.ContainerPermissions{Read: true})
	for _, tc := range []struct{ name, sasURL string }{{"rwl", rwl}, {"r", ro}} {
		t.Run(tc.name+" refused by the client before any call", func(t *testing.T) {
			_, err := s.client.CreateSPAsyncReadJob(ctx, siteURL, spo.ReadJobRequest{URL: s.http.URL + lib.RootFolderURL, ManifestContainerURI: tc.sasURL})
			if err == nil || strings.Contains(err.Error(), "sig=") {
				t.Fatalf("err = %v, want a refusal without the signature", err)
			}
		})
		t.Run(tc.name+" refused by the simulator", func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"url": s.http.URL + lib.RootFolderURL, "azureContainerManifestUri": tc.sasURL})
			req, _ := http.NewRequest(http.MethodPost, siteURL+"/_api/site/CreateSPAsyncReadJob", strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 500 || !strings.Contains(string(msg), "azureContainerManifestUri") || strings.Contains(string(msg), "sig=") {
				t.Fatalf("status %d body %s: want a 500 naming the SAS problem without its signature", resp.StatusCode, msg)
			}
		})
	}
}
