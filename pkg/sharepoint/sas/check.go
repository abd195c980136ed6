package sas

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sentinels for errors.Is. Every error of this package wraps one of them.
var (
	ErrInvalidURL        = errors.New("invalid SAS URL")
	ErrNotSAS            = errors.New("not a SAS URL")
	ErrWrongService      = errors.New("wrong storage service")
	ErrWrongResource     = errors.New("wrong SAS resource type")
	ErrExtraPermissions  = errors.New("SAS grants more permissions than allowed")
	ErrMissingPermission = errors.New("SAS lacks a required permission")
	ErrExpired           = errors.New("SAS expired")
)

// PermissionError says which permissions a SAS has and which SharePoint wants. It matches
// ErrExtraPermissions and/or ErrMissingPermission with errors.Is.
type PermissionError struct {
	Subject string // "manifest container SAS for acct/container"
	Have    string // sp as given
	Want    string // what SharePoint requires, in words
	Missing string // required letters that are absent
	Extra   string // letters that are not allowed
}

// Error says what the SAS grants and what SharePoint requires.
func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s has permissions %s; SharePoint requires %s", e.Subject, orNone(e.Have), e.Want)
}

// Is matches the sentinels that describe the problem.
func (e *PermissionError) Is(target error) bool {
	return (target == ErrExtraPermissions && e.Extra != "") ||
		(target == ErrMissingPermission && e.Missing != "")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// rule is what SharePoint requires of one kind of SAS.
type rule struct {
	subject  string
	parse    func(string) (Info, error)
	resource string // required sr; empty: not checked (queue SAS have none)
	required string // permission letters that must be present
	allowed  string // other letters permitted; "*" any
	want     string // the requirement in words
}

var (
	manifestRule = rule{subject: "manifest container SAS", parse: ParseContainer, resource: "c",
		required: "rw", want: "exactly rw (Read and Write)"}
	queueRule = rule{subject: "queue SAS", parse: ParseQueue, required: "a", allowed: "*", want: "a (Add)"}
)

// The Migration API's (import) rules: the content container SAS grants only Read and List, the
// manifest container SAS only Read, List and Write ("Preparing the content for Migration API",
// Permissions; docs/amr-protocol.md §10).
var (
	importContentRule = rule{subject: "content container SAS", parse: ParseContainer, resource: "c",
		required: "rl", want: "exactly rl (Read and List)"}
	importManifestRule = rule{subject: "manifest container SAS", parse: ParseContainer, resource: "c",
		required: "rlw", want: "exactly rlw (Read, List and Write)"}
)

// CheckImportContentAt applies the Migration API's rule for azureContainerSourceUri at now.
func CheckImportContentAt(rawURL string, now time.Time) error {
	return importContentRule.check(rawURL, now)
}

// CheckImportManifestAt applies the Migration API's rule for an import's azureContainerManifestUri
// at now.
func CheckImportManifestAt(rawURL string, now time.Time) error {
	return importManifestRule.check(rawURL, now)
}

// CheckManifestContainer applies SharePoint's rule for AMR's azureContainerManifestUri: a
// container SAS (sr=c) granting exactly Read and Write, not expired. SharePoint fails the job
// otherwise, so the submitter refuses such a URL before calling it.
func CheckManifestContainer(rawURL string) error {
	return CheckManifestContainerAt(rawURL, time.Now())
}

// CheckManifestContainerAt is CheckManifestContainer at a given time.
func CheckManifestContainerAt(rawURL string, now time.Time) error {
	return manifestRule.check(rawURL, now)
}

// CheckQueue applies SharePoint's rule for azureQueueReportUri: a queue SAS that allows Add
// (other permissions are allowed), not expired.
func CheckQueue(rawURL string) error {
	return CheckQueueAt(rawURL, time.Now())
}

// CheckQueueAt is CheckQueue at a given time.
func CheckQueueAt(rawURL string, now time.Time) error {
	return queueRule.check(rawURL, now)
}

func (r rule) check(rawURL string, now time.Time) error {
	info, err := r.parse(rawURL)
	if err != nil {
		return fmt.Errorf("%s: %w", r.subject, err)
	}
	subj := r.subject + " for " + info.Label()
	if err := checkSigned(info, subj, now); err != nil {
		return err
	}
	if r.resource != "" && info.Resource != r.resource {
		return fmt.Errorf("%s has sr=%s; SharePoint requires a container SAS (sr=%s): %w", subj, orNone(info.Resource), r.resource, ErrWrongResource)
	}
	return checkPermissions(info.Permissions, subj, r)
}

func checkSigned(info Info, subj string, now time.Time) error {
	if !info.Signed {
		return fmt.Errorf("%s has no signature (sig): %w", subj, ErrNotSAS)
	}
	if info.Expiry.IsZero() {
		// A stored access policy may carry the expiry, but SharePoint cannot be assumed to see one.
		return fmt.Errorf("%s has no expiry (se): %w", subj, ErrNotSAS)
	}
	if !now.Before(info.Expiry) {
		return fmt.Errorf("%s expired at %s: %w", subj, info.Expiry.Format(time.RFC3339), ErrExpired)
	}
	return nil
}

// checkPermissions compares sp against the rule's letters.
func checkPermissions(sp, subj string, r rule) error {
	required, allowed := r.required, r.allowed
	var missing, extra strings.Builder
	for _, r := range required {
		if !strings.ContainsRune(sp, r) {
			missing.WriteRune(r)
		}
	}
	if allowed != "*" {
		seen := []rune{}
		for _, r := range sp {
			if !strings.ContainsRune(required, r) && !strings.ContainsRune(allowed, r) && !slices.Contains(seen, r) {
				seen = append(seen, r)
				extra.WriteRune(r)
			}
		}
	}
	if missing.Len() == 0 && extra.Len() == 0 {
		return nil
	}
	return &PermissionError{Subject: subj, Have: sp, Want: r.want, Missing: missing.String(), Extra: extra.String()}
}
