// Package spo is amrpipe's client for SharePoint Online's REST API: the Asynchronous Metadata
// Read (AMR) and migration-job calls bound to SP.Site, and the folder calls the planner uses for
// sizing. It speaks the contract in docs/rest-surface.md, accepts both OData shapes (nometadata
// and verbose) in answers, and works against any base URL: a tenant over https or the simulator
// on loopback over http.
//
// Every call makes one HTTP attempt (FolderTotals aside, which asks again without a field the
// tenant refuses, see docs/amr-protocol.md §7.5) and returns a typed error; retrying is the
// caller's job, because the stages share one throttling budget per host across replicas:
//
//	c, err := spo.New(spo.Options{Tokens: tokens, UserAgent: "ISV|Contoso|amrpipe/1.0"})
//	info, err := c.CreateSPAsyncReadJob(ctx, "https://contoso.sharepoint.com/sites/hr", spo.ReadJobRequest{
//		URL:                  "https://contoso.sharepoint.com/sites/hr/Shared Documents",
//		EncryptionKey:        key, // 32 bytes, stored wrapped before this call
//		ManifestContainerURI: containerSAS, // Read+Write only
//	})
//	var se *spo.Error
//	if errors.As(err, &se) && se.Throttled() { /* wait se.RetryAfter, pause the host */ }
//
// Error text names the call and the site and never carries a SAS signature, key or token;
// messages SharePoint sends back are scrubbed of them too. SharePoint's error codes and their
// sentinels live in one catalogue, errors.go; what an error means for a message is decided by
// pkg/stage's Verdict.
package spo
