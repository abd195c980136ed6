package export

import (
	"unicode"
	"unicode/utf8"
)

// EncodeName encodes s the way .NET's XmlConvert.EncodeName does, which is what SharePoint uses for
// the attributes it lists in EncodedAttributes:
//
//   - the first character is escaped unless it is an XML 1.0 (4th edition, Appendix B) Letter,
//     '_' or ':'; every later character is escaped unless it is a NameChar (Letter, Digit, '.',
//     '-', '_', ':', CombiningChar, Extender);
//   - an escaped BMP character becomes _xHHHH_ and a character outside the BMP _xHHHHHHHH_
//     (upper-case hex, as .NET prints the UTF-16 surrogate pair's code point);
//   - an underscore that starts an escape-like sequence (_ followed by x or X, four hex digits and
//     either '_' or four more hex digits and '_') is itself escaped as _x005F_, so decoding is exact.
//     .NET tests that pattern on the input only, so "_x0041 " comes out as "_x0041_x0020_", which
//     decodes to "A "; EncodeName also treats a character that it escapes as the closing '_' and
//     so writes "_x005F_x0041_x0020_". This differs from .NET only where .NET's output does not
//     decode back to its input.
//
// A byte that is not valid UTF-8 is treated as U+FFFD (.NET never sees such bytes: its strings are
// UTF-16), so only valid UTF-8 round-trips exactly. EncodeName returns s itself when nothing needs
// escaping.
func EncodeName(s string) string {
	if !needsEncoding(s) {
		return s
	}
	return string(appendEncodedName(make([]byte, 0, len(s)+16), s))
}

// needsEncoding reports whether EncodeName would change s.
func needsEncoding(s string) bool {
	for i, r := range s {
		if !nameRuneOK(s, i, r) {
			return true
		}
	}
	return false
}

// nameRuneOK reports whether rune r at byte offset i of s may stay as it is in an encoded name.
func nameRuneOK(s string, i int, r rune) bool {
	if r == '_' {
		return !startsEscape(s[i+1:])
	}
	return nameCharOK(s[i:], r, i == 0)
}

// nameCharOK reports whether r, the first rune of rest, is a name (start) character; '_' is one.
func nameCharOK(rest string, r rune, first bool) bool {
	if r < utf8.RuneSelf {
		return asciiNameOK(byte(r), first)
	}
	if r > 0xFFFF || (r == utf8.RuneError && !validRuneAt(rest)) {
		return false
	}
	if first {
		return unicode.Is(nameStartTable, r)
	}
	return unicode.Is(nameStartTable, r) || unicode.Is(nameCharTable, r)
}

// asciiNameOK is the ASCII part of the Appendix B tables, without the table look-up.
func asciiNameOK(c byte, first bool) bool {
	switch {
	case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', c == '_', c == ':':
		return true
	case '0' <= c && c <= '9', c == '.', c == '-':
		return !first
	}
	return false
}

// validRuneAt reports whether the U+FFFD at the start of s is a real U+FFFD rather than a bad byte.
func validRuneAt(s string) bool {
	_, n := utf8.DecodeRuneInString(s)
	return n > 1
}

// startsEscape reports whether s, the text after an underscore, would make the encoded output read
// as an escape: [Xx][0-9a-fA-F]{4}(_|[0-9a-fA-F]{4}_), the pattern .NET's EncodeName protects,
// where the closing '_' may also be the start of the escape of the character that follows.
func startsEscape(s string) bool {
	if len(s) < 5 || (s[0] != 'x' && s[0] != 'X') || !isHex(s[1:5]) {
		return false
	}
	if closesEscape(s[5:]) {
		return true
	}
	return len(s) >= 9 && isHex(s[5:9]) && closesEscape(s[9:])
}

// closesEscape reports whether the encoded form of s (not at the start of the name) begins with '_'.
func closesEscape(s string) bool {
	if s == "" {
		return false
	}
	r, _ := utf8.DecodeRuneInString(s)
	return r == '_' || !nameCharOK(s, r, false)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// appendEncodedName appends EncodeName(s) to dst.
func appendEncodedName(dst []byte, s string) []byte {
	last := 0
	for i, r := range s {
		if nameRuneOK(s, i, r) {
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = appendEscapedRune(dst, r)
		last = i + utf8.RuneLen(r)
		if r == utf8.RuneError && !validRuneAt(s[i:]) {
			last = i + 1
		}
	}
	return append(dst, s[last:]...)
}

// appendEscapedRune appends _xHHHH_ (BMP) or _xHHHHHHHH_ (supplementary planes).
func appendEscapedRune(dst []byte, r rune) []byte {
	const hexDigits = "0123456789ABCDEF"
	digits := 4
	if r > 0xFFFF {
		digits = 8
	}
	dst = append(dst, '_', 'x')
	for shift := (digits - 1) * 4; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(r>>uint(shift))&0xF])
	}
	return append(dst, '_')
}
