package server

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// The simulator's own reading of the SAS URLs a create call brings. It is written from
// Microsoft's words, independently of the client's pkg/sharepoint/sas, on purpose: if both
// shared one check, a mistake in it would pass every test. SharePoint's words (AMR API reference,
// "azureContainerManifestUri" and "azureQueueReportUri"):
//
//   - the manifest container SAS "must have been created with only Read and Write permissions or
//     the asynchronous metadata read job will fail";
//   - the queue SAS "must have been created with Add permissions or the migration job will be
//     unable to add events to the queue".
//
// An expired SAS cannot be written with either, so it is refused too.

// checkContainerSAS refuses a manifest container URL that is not a SAS granting exactly read
// and write on a container.
func checkContainerSAS(raw string, now time.Time) error {
	q, err := sasQuery(raw, now)
	if err != nil {
		return err
	}
	if sr := q.Get("sr"); sr != "c" {
		return fmt.Errorf("the SAS is not for a container (sr=%q)", sr)
	}
	if perms := q.Get("sp"); !samePerms(perms, "rw") {
		return fmt.Errorf("the SAS grants %q; only Read and Write are accepted", perms)
	}
	return nil
}

// checkQueueSAS refuses a report queue URL that is not a SAS allowing Add.
func checkQueueSAS(raw string, now time.Time) error {
	q, err := sasQuery(raw, now)
	if err != nil {
		return err
	}
	if perms := q.Get("sp"); !strings.Contains(perms, "a") {
		return fmt.Errorf("the SAS grants %q; Add is required", perms)
	}
	return nil
}

// sasQuery parses a SAS URL and checks what every SAS needs: a signature and an expiry that has
// not passed.
func sasQuery(raw string, now time.Time) (url.Values, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, errors.New("not an absolute storage URL")
	}
	q := u.Query()
	if q.Get("sig") == "" {
		return nil, errors.New("not a SAS URL (no signature)")
	}
	se, err := time.Parse(time.RFC3339, q.Get("se"))
	if err != nil {
		if se, err = time.Parse("2006-01-02", q.Get("se")); err != nil {
			return nil, fmt.Errorf("the SAS has no readable expiry (se=%q)", q.Get("se"))
		}
	}
	if !now.Before(se) {
		return nil, fmt.Errorf("the SAS expired at %s", se.Format(time.RFC3339))
	}
	return q, nil
}

// samePerms reports whether a permission string has exactly the letters of want.
func samePerms(have, want string) bool {
	if len(have) != len(want) {
		return false
	}
	for _, c := range want {
		if !strings.ContainsRune(have, c) {
			return false
		}
	}
	return true
}

// signatureRE finds a SAS signature in text, so that the simulator's logs and errors never
// carry one.
var signatureRE = regexp.MustCompile(`(?i)(sig=)[^&\s"']+`)

// redact hides SAS signatures in s.
func redact(s string) string { return signatureRE.ReplaceAllString(s, "${1}REDACTED") }
