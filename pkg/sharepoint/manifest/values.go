package manifest

import (
	"bytes"
	"time"
	"unicode/utf8"
)

// appendValue appends the logical value of a raw attribute value to dst:
// predefined and character entity references decoded, literal tab/CR/LF
// normalised to spaces (XML 1.0 §3.3.3). On a bad reference it returns the
// index of the '&' in v and a message.
func appendValue(dst, v []byte, flags uint8) ([]byte, int, string) {
	if flags&(vAmp|vWS) == 0 {
		return append(dst, v...), -1, ""
	}
	for i := 0; i < len(v); {
		switch c := v[i]; c {
		case '\r':
			dst = append(dst, ' ')
			i++
			if i < len(v) && v[i] == '\n' {
				i++
			}
		case '\n', '\t':
			dst = append(dst, ' ')
			i++
		case '&':
			j := bytes.IndexByte(v[i:], ';')
			if j < 0 {
				return dst, i, "unterminated entity reference"
			}
			ref := v[i+1 : i+j]
			switch string(ref) {
			case "amp":
				dst = append(dst, '&')
			case "lt":
				dst = append(dst, '<')
			case "gt":
				dst = append(dst, '>')
			case "quot":
				dst = append(dst, '"')
			case "apos":
				dst = append(dst, '\'')
			default:
				r, ok := charRef(ref)
				if !ok {
					return dst, i, "unknown or invalid entity reference &" + string(ref) + ";"
				}
				dst = utf8.AppendRune(dst, r)
			}
			i += j + 1
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst, -1, ""
}

// charRef decodes "#NN" or "#xHH" to a character allowed in XML.
func charRef(ref []byte) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	digits, base := ref[1:], rune(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 {
		return 0, false
	}
	var r rune
	for _, c := range digits {
		d := hexVal(c)
		if d < 0 || rune(d) >= base {
			return 0, false
		}
		r = r*base + rune(d)
		if r > utf8.MaxRune {
			return 0, false
		}
	}
	return r, isXMLChar(r)
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// hexAt parses n hex digits at s[i:], or returns -1.
func hexAt(s []byte, i, n int) int64 {
	if i+n > len(s) {
		return -1
	}
	var v int64
	for _, c := range s[i : i+n] {
		d := hexVal(c)
		if d < 0 {
			return -1
		}
		v = v<<4 | int64(d)
	}
	return v
}

// escapeAt reports the _xHHHH_ or _xHHHHHHHH_ escape at s[i:], as .NET's
// XmlConvert.DecodeName matches it: its length (0 if none) and code point.
func escapeAt(s []byte, i int) (int, int64) {
	if i+7 > len(s) || s[i] != '_' || s[i+1] != 'x' && s[i+1] != 'X' {
		return 0, 0
	}
	if s[i+6] == '_' {
		if u := hexAt(s, i+2, 4); u >= 0 {
			return 7, u
		}
	}
	if i+11 <= len(s) && s[i+10] == '_' {
		if u := hexAt(s, i+2, 8); u >= 0 {
			return 11, u
		}
	}
	return 0, 0
}

// appendDecodedName appends s with XmlConvert.DecodeName applied: every
// _xHHHH_ (UTF-16 unit) and _xHHHHHHHH_ (code point) escape replaced by its
// character. A UTF-16 surrogate pair written as two escapes is joined; a lone
// surrogate becomes U+FFFD; an 8-digit escape above U+10FFFF stays as written,
// as in .NET.
func appendDecodedName(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		n, u := escapeAt(s, i)
		if n == 0 {
			dst = append(dst, s[i])
			i++
			continue
		}
		switch {
		case u > utf8.MaxRune:
			dst = append(dst, s[i:i+n]...)
		case n == 7 && u >= 0xD800 && u <= 0xDBFF:
			if m, lo := escapeAt(s, i+n); m == 7 && lo >= 0xDC00 && lo <= 0xDFFF {
				dst = utf8.AppendRune(dst, rune(0x10000+(u-0xD800)<<10+(lo-0xDC00)))
				n += m
			} else {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			}
		default:
			dst = utf8.AppendRune(dst, rune(u)) // a lone low surrogate becomes U+FFFD
		}
		i += n
	}
	return dst
}

// parseTime parses the xs:dateTime forms SharePoint writes
// (2023-05-11T05:19:48, optional fraction, optional Z or ±hh:mm). A time
// without a zone is UTC.
func parseTime(s string) (time.Time, bool) {
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' && s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 1 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	if day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	i, nsec := 19, 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 9 {
				nsec = nsec*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return time.Time{}, false
		}
		for k := min(i-start, 9); k < 9; k++ {
			nsec *= 10
		}
	}
	offset := 0
	switch {
	case i == len(s):
	case s[i] == 'Z' && i+1 == len(s):
	case (s[i] == '+' || s[i] == '-') && i+6 == len(s) && s[i+3] == ':':
		oh, om := num(i+1, 2), num(i+4, 2)
		if oh < 0 || oh > 14 || om < 0 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if s[i] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	unix := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return time.Unix(unix, int64(nsec)).UTC(), true
}

// daysFromCivil returns the days from 1970-01-01 to a proleptic Gregorian
// date (Howard Hinnant's algorithm); faster than time.Date on the hot path.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y >= 0 here: years start at 1
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
