package spo_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// Create a job against a stand-in for SharePoint, then read its progress.
func Example() {
	sp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sites/hr/_api/site/CreateSPAsyncReadJob":
			fmt.Fprint(w, `{"JobId":"3e280efa-78a3-4ba1-bac6-e447aa538ca5","CurrentChangeToken":"1;3;x;1;42"}`)
		default: // GetMigrationJobProgress(jobId='…',nextToken=0)
			fmt.Fprint(w, `{"Logs":["{\"Event\":\"JobQueued\"}"],"NextToken":"1"}`)
		}
	}))
	defer sp.Close()
	site := sp.URL + "/sites/hr"

	c, err := spo.New(spo.Options{Tokens: spo.StaticToken("token"), UserAgent: "ISV|Contoso|amrpipe/1.0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	info, err := c.CreateSPAsyncReadJob(ctx, site, spo.ReadJobRequest{
		URL:                  site + "/Shared Documents",
		Options:              spo.ReadOptions{IncludeVersions: true},
		ManifestContainerURI: "https://acct.blob.core.windows.net/manifests?sv=2026-12-06&sr=c&sp=rw&se=2099-01-01T00:00:00Z&sig=c2ln",
	})
	var spErr *spo.Error
	switch {
	case errors.As(err, &spErr) && spErr.Throttled():
		fmt.Println("throttled; retry after", spErr.RetryAfter)
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	fmt.Println("job", info.JobID, "change token", info.CurrentChangeToken)

	p, err := c.GetMigrationJobProgress(ctx, site, info.JobID, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Logs, "next", p.NextToken)

	// A SAS with List is refused before SharePoint is called.
	_, err = c.CreateSPAsyncReadJob(ctx, site, spo.ReadJobRequest{
		URL:                  site + "/Shared Documents",
		ManifestContainerURI: "https://acct.blob.core.windows.net/manifests?sr=c&sp=rwl&se=2099-01-01T00:00:00Z&sig=c2ln",
	})
	fmt.Println(errors.Is(err, spo.ErrInvalidRequest))
	// Output:
	// job 3e280efa-78a3-4ba1-bac6-e447aa538ca5 change token 1;3;x;1;42
	// [{"Event":"JobQueued"}] next 1
	// true
}
