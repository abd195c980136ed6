package export

import "unicode/utf8"

// Byte classes for attribute values; a table keeps the per-byte loop to one load and compare.
const (
	classPlain   = iota // copied as is
	classEscape         // & < > " and the three whitespace controls: written as references
	classInvalid        // other C0 controls: not XML 1.0 characters
	classMulti          // first or later byte of a multi-byte UTF-8 sequence
)

var byteClass = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = classInvalid
	}
	for _, c := range "&<>\"\t\n\r" {
		t[c] = classEscape
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = classMulti
	}
	return t
}()

// escapes holds the replacement of each classEscape byte. Tab, LF and CR are written as character
// references, as .NET's XmlWriter does in attributes, so attribute-value normalisation keeps them.
var escapes = [256]string{
	'&': "&amp;", '<': "&lt;", '>': "&gt;", '"': "&quot;",
	'\t': "&#x9;", '\n': "&#xA;", '\r': "&#xD;",
}

// appendAttrValue appends s escaped for a double-quoted attribute. It returns false, with dst in an
// unspecified state, as soon as s holds something that is not an XML 1.0 Char (a C0 control other
// than tab, LF and CR, U+FFFE, U+FFFF, or a byte that is not valid UTF-8): such a value must be
// written with EncodeName instead.
func appendAttrValue(dst []byte, s string) ([]byte, bool) {
	last := 0
	for i := 0; i < len(s); {
		// Most values are plain ASCII: skip runs of it without leaving this loop.
		for i < len(s) && byteClass[s[i]] == classPlain {
			i++
		}
		if i == len(s) {
			break
		}
		switch byteClass[s[i]] {
		case classEscape:
			dst = append(dst, s[last:i]...)
			dst = append(dst, escapes[s[i]]...)
			i++
			last = i
		case classInvalid:
			return dst, false
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if !xmlMultiByteChar(r, n) {
				return dst, false
			}
			i += n
		}
	}
	return append(dst, s[last:]...), true
}

// validXML reports whether every character of s is an XML 1.0 Char.
func validXML(s string) bool {
	for i := 0; i < len(s); {
		switch byteClass[s[i]] {
		case classInvalid:
			return false
		case classMulti:
			r, n := utf8.DecodeRuneInString(s[i:])
			if !xmlMultiByteChar(r, n) {
				return false
			}
			i += n
		default:
			i++
		}
	}
	return true
}

// xmlMultiByteChar reports whether a decoded non-ASCII rune of n bytes is an XML 1.0 Char.
// Surrogates never decode from valid UTF-8 (they come back as a 1-byte RuneError).
func xmlMultiByteChar(r rune, n int) bool {
	return n > 1 && r != 0xFFFE && r != 0xFFFF
}
