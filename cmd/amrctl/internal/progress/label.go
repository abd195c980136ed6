package progress

import (
	"fmt"
	"net/url"
	"path"
	"strings"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// labelWidth is the width of a job's label: kind, site and target, so rows line up.
const labelWidth = 48

// Label names a job for a human: its kind, its site and its first URL under the site ("job
// small › Shared Documents/2019"), cut from the left when long, so the end of a path stays
// visible. Several libraries share a name ("Shared Documents"); the site tells them apart.
func Label(rec *amrpipev1.JobRecord) string {
	s := rec.GetSpec()
	kind := "job"
	switch {
	case s.GetProbe():
		kind = "probe"
	case s.GetEmit() == amrpipev1.Emit_EMIT_SECURITY_ONLY:
		kind = "security"
	case s.GetStartChangeToken() != "":
		kind = "incremental"
	case s.GetMulti():
		kind = fmt.Sprintf("multi×%d", len(s.GetUrls()))
	}
	return fmt.Sprintf("%-11s %s", kind, fit(Target(s), labelWidth-12))
}

// targetSep joins a site's name and the path under it.
const targetSep = " › "

// Target is "site › path under the site" of a spec's first URL ("small › Shared Documents").
func Target(s *amrpipev1.JobSpec) string {
	urls := s.GetUrls()
	if len(urls) == 0 {
		return "-"
	}
	site, target := urlPath(s.GetSiteUrl()), urlPath(urls[0])
	rel := strings.TrimPrefix(strings.TrimPrefix(target, site), "/")
	if site == "" || rel == target {
		rel = strings.TrimPrefix(target, "/") // not under the site: say it whole
	}
	name := path.Base(site)
	if name == "." || name == "/" {
		name = ""
	}
	switch {
	case rel == "" && name == "":
		return "/"
	case rel == "":
		return name
	case name == "":
		return rel
	}
	return name + targetSep + rel
}

// urlPath is a URL's decoded path without a trailing slash; an unparsable URL is used as is.
func urlPath(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		raw = u.Path
	}
	return strings.TrimRight(raw, "/")
}

// fit pads a target to n runes or shortens it: the path under the site loses its start first
// ("hr › …/Onboarding Tasks"), so the site's name and the end of the path stay readable.
func fit(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s + strings.Repeat(" ", n-len(r))
	}
	if site, rel, ok := strings.Cut(s, targetSep); ok {
		if room := n - len([]rune(site)) - len([]rune(targetSep)); room >= 8 {
			return site + targetSep + cutLeft(rel, room)
		}
	}
	return cutLeft(s, n)
}

// cutLeft keeps the last n-1 runes of s after a "…".
func cutLeft(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// Terminal reports whether a job is finished for good.
func Terminal(s amrpipev1.JobState) bool {
	return s == amrpipev1.JobState_JOB_STATE_DONE || s == amrpipev1.JobState_JOB_STATE_FAILED
}
