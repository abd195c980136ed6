// Package spo is amrpipe's client for SharePoint Online's REST API: the Asynchronous Metadata
// Read (AMR) and migration-job calls bound to SP.Site, and the folder calls the planner uses for
// sizing. It speaks the contract in docs/rest-surface.md, accepts both OData shapes (nometadata
// and verbose) in answers, and works against any base URL: a tenant over https or the simulator
// on loopback over http.
//
// Every call makes one HTTP attempt and returns a classified error; retrying is the caller's
// job, because the submitter shares one throttling budget per host across replicas:
//
//	c, err := spo.New(spo.Options{Tokens: tokens, UserAgent: "ISV|Contoso|amrpipe/1.0"})
//	info, err := c.CreateSPAsyncReadJob(ctx, "https://contoso.sharepoint.com/sites/hr", spo.ReadJobRequest{
//		URL:                  "https://contoso.sharepoint.com/sites/hr/Shared Documents",
//		EncryptionKey:        key, // 32 bytes, stored wrapped before this call
//		ManifestContainerURI: containerSAS, // Read+Write only
//	})
//	switch spo.Classify(err) {
//	case spo.ClassThrottled: // wait the *spo.Error's RetryAfter (errors.As), pause the host
//	case spo.ClassRetryable: // back off and try again
//	case spo.ClassPermanent: // dead-letter with err's text
//	}
//
// Error text names the call and the site and never carries a SAS signature, key or token;
// messages SharePoint sends back are scrubbed of them too. SharePoint's error codes, their
// sentinels and their classes live in one catalogue, errors.go.
package spo
