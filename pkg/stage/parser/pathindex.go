package parser

import (
	"unicode"
	"unicode/utf8"
)

// pathIndex answers "which of these paths is a given path at or below?" in time proportional to
// the given path's depth, whatever the number of paths: a multi-URL job has up to 5,000 URLs,
// and comparing every record with each of them cost seconds per job.
//
// Its answers are exactly those of under(path, r) tried on every r in order: the matching path
// that comes first in the list. under compares the first len(r) bytes of path with r under Unicode
// simple case folding (strings.EqualFold) and needs path to end there or continue with '/'. So a
// path can only match at its own segment ends (the bytes before a '/', and the whole path), and
// the index keys every listed path by its folded form and its byte length: a lookup folds path
// once and tries each segment end.
type pathIndex struct {
	// any is the position of "/" in the list (every path that starts with '/' is at or below the
	// host root), or -1.
	any int
	// first maps a folded path and its byte length to its first position in the list.
	first map[foldKey]int
}

// foldKey is a path in folded form with the byte length of the path as written: under compares
// byte prefixes, and a rune and its fold may differ in length ('K' and 'K', 's' and 'ſ').
type foldKey struct {
	folded string
	n      int
}

func newPathIndex(paths []string) *pathIndex {
	x := &pathIndex{any: -1, first: make(map[foldKey]int, len(paths))}
	for i, p := range paths {
		if p == "/" {
			if x.any < 0 {
				x.any = i
			}
			continue
		}
		k := foldKey{string(appendFolded(nil, p)), len(p)}
		if _, ok := x.first[k]; !ok {
			x.first[k] = i
		}
	}
	return x
}

// lookup returns the position in the list of the first path that path is at or below.
func (x *pathIndex) lookup(path string) (int, bool) {
	best := -1
	if x.any >= 0 && len(path) > 0 && path[0] == '/' {
		best = x.any
	}
	if len(x.first) > 0 {
		// Fold path once; ends[i] is the folded length of path[:i] for each segment end i.
		folded, ends := foldWithEnds(path)
		for _, e := range ends {
			if i, ok := x.first[foldKey{folded[:e.folded], e.n}]; ok && (best < 0 || i < best) {
				best = i
			}
		}
	}
	return best, best >= 0
}

// segmentEnd is a place path may match a listed path: path[:n], folded to folded[:folded].
type segmentEnd struct{ n, folded int }

// foldWithEnds folds path and lists its segment ends (before each '/' but the first byte, and the
// end of path).
func foldWithEnds(path string) (string, []segmentEnd) {
	buf := make([]byte, 0, len(path))
	ends := make([]segmentEnd, 0, 8)
	for i := 0; i < len(path); {
		c := path[i]
		if c == '/' && i > 0 {
			ends = append(ends, segmentEnd{i, len(buf)})
		}
		if c < utf8.RuneSelf {
			buf = append(buf, foldASCII(c))
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(path[i:])
		buf = utf8.AppendRune(buf, foldRune(r))
		i += size
	}
	if len(path) > 0 {
		ends = append(ends, segmentEnd{len(path), len(buf)})
	}
	return string(buf), ends
}

// appendFolded appends the folded form of s: each rune replaced by the smallest rune of its
// simple case-folding orbit, so two strings are equal under strings.EqualFold exactly when their
// folded forms are equal. Bytes that are not UTF-8 become U+FFFD, as EqualFold reads them.
func appendFolded(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			dst = append(dst, foldASCII(c))
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		dst = utf8.AppendRune(dst, foldRune(r))
		i += size
	}
	return dst
}

// foldASCII is foldRune for ASCII: the smallest rune of an ASCII letter's orbit is its upper case
// ('K' also folds with the Kelvin sign and 'S' with the long s, both larger).
func foldASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// foldRune returns the smallest rune of r's simple case-folding orbit.
func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}
