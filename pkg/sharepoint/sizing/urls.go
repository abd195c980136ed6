package sizing

import (
	"fmt"
	"strings"
)

// cleanURL checks that s is an absolute http(s) URL and drops a trailing slash. The path is
// not parsed: SharePoint names may hold '#' and '%', and the URL goes to AMR as it is.
func cleanURL(s string) (string, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	host, _, _ := strings.Cut(rest, "/")
	if !ok || (!strings.EqualFold(scheme, "https") && !strings.EqualFold(scheme, "http")) || host == "" ||
		strings.ContainsAny(host, "?#@ ") || strings.ContainsAny(s, "\x00\r\n") {
		return "", fmt.Errorf("url %q: want an absolute http(s) URL", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// sortKey orders URLs so that a URL's descendants follow it directly: SharePoint paths are
// case-insensitive, and '/' sorts before every other character.
func sortKey(u string) string {
	return strings.ReplaceAll(strings.ToLower(u), "/", "\x00")
}

// under reports whether u is root or below it.
func under(u, root string) bool {
	lu, lr := strings.ToLower(u), strings.ToLower(root)
	return lu == lr || strings.HasPrefix(lu, lr+"/")
}

// directChild reports whether u is a direct child of parent.
func directChild(u, parent string) bool {
	if !under(u, parent) || len(u) <= len(parent)+1 {
		return false
	}
	return !strings.Contains(u[len(parent)+1:], "/")
}

// depth counts the path segments of an absolute URL.
func depth(u string) int {
	rest := u[strings.Index(u, "//")+2:]
	return strings.Count(rest, "/")
}

// sameURL compares SharePoint URLs, which are case-insensitive.
func sameURL(a, b string) bool {
	return strings.EqualFold(a, b)
}
