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
	// paths is the list itself: a few paths are scanned, which costs less than folding.
	paths []string
	// any is the position of "/" in the list (every path that starts with '/' is at or below the
	// host root), or -1.
	any int
	// first maps the byte length of a listed path, then its folded form, to its first position in
	// the list: under compares byte prefixes, and a rune and its fold may differ in length ('K'
	// and 'K', 's' and 'ſ').
	first map[int]map[string]int
}

// scanBelow is the number of paths up to which lookup scans the list.
const scanBelow = 8

func newPathIndex(paths []string) *pathIndex {
	x := &pathIndex{paths: paths, any: -1, first: map[int]map[string]int{}}
	for i, p := range paths {
		if p == "/" {
			if x.any < 0 {
				x.any = i
			}
			continue
		}
		byFold := x.first[len(p)]
		if byFold == nil {
			byFold = map[string]int{}
			x.first[len(p)] = byFold
		}
		folded, _ := foldWithEnds(nil, nil, p)
		k := string(folded)
		if _, ok := byFold[k]; !ok {
			byFold[k] = i
		}
	}
	return x
}

// lookup returns the position in the list of the first path that path is at or below.
func (x *pathIndex) lookup(path string) (int, bool) {
	if len(x.paths) <= scanBelow {
		for i, r := range x.paths {
			if under(path, r) {
				return i, true
			}
		}
		return -1, false
	}
	return x.indexed(path)
}

// indexed is lookup through the index.
func (x *pathIndex) indexed(path string) (int, bool) {
	best := -1
	if x.any >= 0 && len(path) > 0 && path[0] == '/' {
		best = x.any
	}
	if len(x.first) > 0 {
		var fb [256]byte
		var eb [16]segmentEnd
		folded, ends := foldWithEnds(fb[:0], eb[:0], path)
		for _, e := range ends {
			// The lookup by string(folded[...]) does not allocate.
			if i, ok := x.first[e.n][string(folded[:e.folded])]; ok && (best < 0 || i < best) {
				best = i
			}
		}
	}
	return best, best >= 0
}

// segmentEnd is a place path may match a listed path: path[:n], folded to folded[:folded].
type segmentEnd struct{ n, folded int }

// foldWithEnds appends path folded to buf and its segment ends (before each '/' but the first
// byte, and the end of path) to ends. The folded form replaces each rune with the smallest rune of
// its simple case-folding orbit, so two strings are equal under strings.EqualFold exactly when
// their folded forms are equal; bytes that are not UTF-8 become U+FFFD, as EqualFold reads them.
func foldWithEnds(buf []byte, ends []segmentEnd, path string) ([]byte, []segmentEnd) {
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
	return buf, ends
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
