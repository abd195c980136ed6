package manifest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// The scanner is a streaming XML tokenizer specialised for package files: it
// yields start and end tags only (with attribute slices pointing into its
// window), skips text, comments, processing instructions and CDATA, and refuses
// every markup declaration. Slices in a token stay valid until the next call.

type tokKind uint8

const (
	tokStart tokKind = iota + 1
	tokEnd
)

// Attribute value flags, set while scanning so that the common value (plain
// ASCII, no entity, no line break) is copied without a second look.
const (
	vAmp   = 1 << iota // contains '&': entity references to decode
	vWS                // contains a literal tab, CR or LF: normalised to spaces
	vHigh              // contains non-ASCII bytes (validated as UTF-8)
	vFinal             // already decoded (reference tokenizer)
	cQuote             // table class only: a quote character
	cBad               // table class only: '<' or a forbidden control character
)

// attr locates an attribute in its token's src. It holds no pointers, so
// filling the reused attribute slice costs no GC write barriers.
type attr struct {
	nlo, nhi int32 // name
	vlo, vhi int32 // raw value
	off      int64 // input offset of the value's first byte
	flags    uint8
}

type token struct {
	kind  tokKind
	name  []byte // qualified name as written
	local []byte // name without its prefix
	attrs []attr
	src   []byte // the bytes attr offsets refer to
	off   int64  // input offset of '<'
}

func (t *token) attrName(a *attr) []byte  { return t.src[a.nlo:a.nhi] }
func (t *token) attrValue(a *attr) []byte { return t.src[a.vlo:a.vhi] }

var (
	nameTab  [256]uint8 // 1: name byte, 2: name start byte
	valueTab [256]uint8
)

func init() {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':', c >= 0x80:
			nameTab[c] = 3
		case c >= '0' && c <= '9', c == '.', c == '-':
			nameTab[c] = 1
		}
		switch {
		case c == '"', c == '\'':
			valueTab[c] = cQuote
		case c == '&':
			valueTab[c] = vAmp
		case c == '\t', c == '\n', c == '\r':
			valueTab[c] = vWS
		case c == '<', c < 0x20:
			valueTab[c] = cBad
		case c >= 0x80:
			valueTab[c] = vHigh
		}
	}
}

// elemStack tracks open elements for tag matching, depth and root rules; both
// tokenizers share it.
type elemStack struct {
	names    []byte // open element names, concatenated
	ends     []int  // end of each name in names
	maxDepth int
	started  bool // the root element has been opened
	done     bool // the root element has been closed
}

func (st *elemStack) depth() int { return len(st.ends) }

func (st *elemStack) top() []byte {
	start := 0
	if n := len(st.ends); n > 1 {
		start = st.ends[n-2]
	}
	return st.names[start:st.ends[len(st.ends)-1]]
}

// push opens an element; it returns a message when a rule is broken.
func (st *elemStack) push(name []byte) (string, error) {
	if st.done {
		return "content after the root element", ErrMalformed
	}
	if len(st.ends) >= st.maxDepth {
		return fmt.Sprintf("element nesting deeper than MaxDepth %d", st.maxDepth), ErrLimit
	}
	st.started = true
	st.names = append(st.names, name...)
	st.ends = append(st.ends, len(st.names))
	return "", nil
}

// pop closes the innermost element, which must be called name.
func (st *elemStack) pop(name []byte) (string, error) {
	if len(st.ends) == 0 {
		return fmt.Sprintf("unexpected end tag %s", clip(name)), ErrMalformed
	}
	if top := st.top(); !bytes.Equal(top, name) {
		return fmt.Sprintf("element %s closed by end tag %s", clip(top), clip(name)), ErrMalformed
	}
	st.popTop()
	return "", nil
}

func (st *elemStack) popTop() {
	st.ends = st.ends[:len(st.ends)-1]
	if n := len(st.ends); n > 0 {
		st.names = st.names[:st.ends[n-1]]
	} else {
		st.names = st.names[:0]
		st.done = true
	}
}

// eofError says why the end of input is premature, or returns nil.
func (st *elemStack) eofError() string {
	switch {
	case !st.started:
		return "no root element"
	case len(st.ends) > 0:
		return fmt.Sprintf("unexpected end of input: element %s is not closed", clip(st.top()))
	}
	return ""
}

// clip quotes a name for an error message, shortened.
func clip(b []byte) string {
	const max = 64
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}

type scanner struct {
	r        io.Reader
	buf      []byte
	pos, end int   // unread data is buf[pos:end]
	base     int64 // input offset of buf[0]
	lines    int   // newlines in the input before buf[0]
	eof      bool  // the reader is exhausted
	maxTok   int
	maxAttr  int
	skipTerm string // inside a comment, PI or CDATA section: its terminator
	pending  bool   // the last start tag was self-closing: its end is due
	st       elemStack
	tok      token
	err      error // sticky
}

func newScanner(r io.Reader, o Options) *scanner {
	return &scanner{
		r:       r,
		buf:     make([]byte, min(o.BufferSize, o.MaxTokenBytes)),
		maxTok:  o.MaxTokenBytes,
		maxAttr: o.MaxAttrBytes,
		st:      elemStack{maxDepth: o.MaxDepth},
	}
}

// errAt builds a SyntaxError for buf index i.
func (s *scanner) errAt(i int, class error, msg string) error {
	return &SyntaxError{Offset: s.base + int64(i), Line: s.lineAt(i), Msg: msg, Err: class}
}

// lineAt returns the line of buf index i (i must be within the window).
func (s *scanner) lineAt(i int) int {
	if i < 0 || i > s.end {
		return 0
	}
	return s.lines + bytes.Count(s.buf[:i], []byte{'\n'}) + 1
}

// lineOf returns the line of an input offset inside the current window, or 0.
func (s *scanner) lineOf(off int64) int {
	return s.lineAt(int(off - s.base))
}

func (s *scanner) fail(err error) error {
	s.err = err
	return err
}

// fill reads more input after the unread data, compacting and growing the
// window as needed. It returns false at the end of input.
func (s *scanner) fill() (bool, error) {
	if s.eof {
		return false, nil
	}
	if s.pos > 0 {
		s.lines += bytes.Count(s.buf[:s.pos], []byte{'\n'})
		n := copy(s.buf, s.buf[s.pos:s.end])
		s.base += int64(s.pos)
		s.pos, s.end = 0, n
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= s.maxTok {
			return false, s.errAt(0, ErrLimit, fmt.Sprintf("markup longer than MaxTokenBytes %d", s.maxTok))
		}
		nb := make([]byte, min(2*len(s.buf), s.maxTok))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	for tries := 0; tries < 100; tries++ {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err == io.EOF {
			s.eof = true
			return n > 0, nil
		}
		if err != nil {
			return n > 0, fmt.Errorf("manifest: read at offset %d: %w", s.base+int64(s.end), err)
		}
		if n > 0 {
			return true, nil
		}
	}
	return false, fmt.Errorf("manifest: read: %w", io.ErrNoProgress)
}

// next returns the next start or end tag, or io.EOF after a complete document.
func (s *scanner) next() (*token, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.pending {
		s.pending = false
		s.st.popTop()
		s.tok.kind = tokEnd
		s.tok.attrs = s.tok.attrs[:0]
		return &s.tok, nil
	}
	for {
		if s.pos >= s.end || s.skipTerm != "" && s.end-s.pos < len(s.skipTerm) {
			more, err := s.fill()
			if err != nil {
				return nil, s.fail(err)
			}
			if !more {
				return nil, s.fail(s.atEOF())
			}
		}
		b := s.buf[s.pos:s.end]
		if s.skipTerm != "" {
			if i := bytes.Index(b, []byte(s.skipTerm)); i >= 0 {
				s.pos += i + len(s.skipTerm)
				s.skipTerm = ""
				continue
			}
			// Keep what may be the start of the terminator and read on.
			s.pos = max(s.pos, s.end-(len(s.skipTerm)-1))
			more, err := s.fill()
			if err != nil {
				return nil, s.fail(err)
			}
			if !more {
				return nil, s.fail(s.atEOF())
			}
			continue
		}
		if b[0] != '<' {
			// Mostly a short indent between tags: look at a few bytes before
			// calling IndexByte.
			i := 1
			for i < len(b) && i < 16 && b[i] != '<' {
				i++
			}
			if i == 16 {
				if j := bytes.IndexByte(b[i:], '<'); j >= 0 {
					i += j
				} else {
					i = len(b)
				}
			}
			if s.st.depth() == 0 {
				if err := s.outsideText(b[:i]); err != nil {
					return nil, s.fail(err)
				}
			}
			s.pos += i
			continue
		}
		n, err := s.markup(b)
		if err != nil {
			return nil, s.fail(err)
		}
		if n == 0 { // the markup continues beyond the window
			more, err := s.fill()
			if err != nil {
				return nil, s.fail(err)
			}
			if !more {
				return nil, s.fail(s.errAt(s.pos, ErrMalformed, "unexpected end of input inside the markup starting here"))
			}
			continue
		}
		s.pos += n
		if s.tok.kind != 0 {
			return &s.tok, nil
		}
	}
}

func (s *scanner) atEOF() error {
	if s.skipTerm != "" {
		return s.errAt(s.end, ErrMalformed, "unexpected end of input inside a comment, PI or CDATA section")
	}
	if msg := s.st.eofError(); msg != "" {
		return s.errAt(s.end, ErrMalformed, msg)
	}
	return io.EOF
}

// outsideText checks text before or after the root element: only white space
// (and a UTF-8 byte order mark at the very start) is allowed.
func (s *scanner) outsideText(b []byte) error {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			continue
		}
		if s.base+int64(s.pos+i) == 0 && bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
			i += 2
			continue
		}
		if s.base+int64(s.pos+i) == 0 && (bytes.HasPrefix(b, []byte("\xfe\xff")) || bytes.HasPrefix(b, []byte("\xff\xfe"))) {
			return s.errAt(s.pos+i, ErrMalformed, "UTF-16 input is not supported")
		}
		if s.st.done {
			return s.errAt(s.pos+i, ErrMalformed, "text after the root element")
		}
		return s.errAt(s.pos+i, ErrMalformed, "text before the root element")
	}
	return nil
}

// markup handles the markup at b[0] == '<'. It returns the bytes consumed, or
// 0 when b does not hold all of it. s.tok.kind is 0 when nothing is yielded.
func (s *scanner) markup(b []byte) (int, error) {
	s.tok.kind = 0
	if len(b) < 2 {
		return 0, nil
	}
	switch b[1] {
	case '/':
		return s.endTag(b)
	case '?':
		return s.procInst(b)
	case '!':
		return s.bang(b)
	}
	return s.startTag(b)
}

func (s *scanner) bang(b []byte) (int, error) {
	if len(b) < 9 && !s.eof {
		return 0, nil
	}
	switch {
	case bytes.HasPrefix(b, []byte("<!--")):
		s.skipTerm = "-->"
		return 4, nil
	case bytes.HasPrefix(b, []byte("<![CDATA[")):
		if s.st.depth() == 0 {
			return 0, s.errAt(s.pos, ErrMalformed, "CDATA section outside the root element")
		}
		s.skipTerm = "]]>"
		return 9, nil
	}
	return 0, s.errAt(s.pos, ErrDTD, "DOCTYPE or other markup declaration is not allowed")
}

func (s *scanner) procInst(b []byte) (int, error) {
	if len(b) < 6 && !s.eof {
		return 0, nil
	}
	if !bytes.HasPrefix(b, []byte("<?xml")) || len(b) > 5 && nameTab[b[5]] != 0 {
		s.skipTerm = "?>"
		return 2, nil
	}
	// The XML declaration: small, so it is read whole to check its encoding.
	end := bytes.Index(b, []byte("?>"))
	if end < 0 {
		return 0, nil
	}
	decl := b[:end]
	if i := bytes.Index(decl, []byte("encoding")); i >= 0 {
		rest := bytes.TrimLeft(decl[i+len("encoding"):], " \t\r\n")
		if len(rest) > 0 && rest[0] == '=' {
			rest = bytes.TrimLeft(rest[1:], " \t\r\n")
			if len(rest) > 1 && (rest[0] == '"' || rest[0] == '\'') {
				if j := bytes.IndexByte(rest[1:], rest[0]); j >= 0 {
					enc := rest[1 : 1+j]
					if !bytes.EqualFold(enc, []byte("utf-8")) {
						return 0, s.errAt(s.pos, ErrMalformed, fmt.Sprintf("unsupported encoding %s", clip(enc)))
					}
				}
			}
		}
	}
	return end + 2, nil
}

// scanValue scans an attribute value from b[i] to its closing quote q. It
// returns the index of the quote (-1 when b ends first), which of vAmp, vWS
// and vHigh apply, and the index of the first forbidden byte ('<' or a control
// character), or -1. Eight bytes are tested at a time: most values are plain
// ASCII, and only the word holding the quote is looked at byte by byte.
func scanValue(b []byte, i int, q byte) (end int, flags uint8, bad int) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quotes := uint64(q) * ones
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		special := x & highs                    // non-ASCII
		special |= (x - 0x20*ones) &^ x & highs // a byte below 0x20
		y := x ^ '&'*ones                       // a zero byte where x holds '&'
		special |= (y - ones) &^ y & highs
		y = x ^ '<'*ones
		special |= (y - ones) &^ y & highs
		y = x ^ quotes
		special |= (y - ones) &^ y & highs
		if special != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		c := b[i]
		if c == q {
			return i, flags, -1
		}
		if k := valueTab[c]; k != 0 {
			if k == cBad {
				return -1, flags, i
			}
			flags |= k &^ cQuote
		}
	}
	return -1, flags, -1
}

// scanName returns the end of the XML name starting at b[i], and whether it
// holds non-ASCII bytes. end == len(b) means the name may continue. Names are
// mostly ASCII letters ("TimeLastModified"): those are skipped eight bytes at a
// time, the rest byte by byte. The byte loop was 7 % of parse-and-publish's CPU.
func scanName(b []byte, i int) (int, bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		if x&highs != 0 {
			break
		}
		// Folded to lower case, a byte is a letter when it is at least 'a' and below '{'
		// (no sum carries into the next byte: every byte is below 0x80).
		y := x | 0x20*ones
		letters := (y + (0x80-'a')*ones) &^ (y + (0x80-'z'-1)*ones) & highs
		if letters != highs {
			i += bits.TrailingZeros64(^letters&highs) >> 3
			break
		}
		i += 8
	}
	var acc byte
	for i < len(b) {
		c := b[i]
		if nameTab[c] == 0 {
			break
		}
		acc |= c
		i++
	}
	return i, acc >= 0x80
}

// checkName validates a scanned name b[start:end].
func (s *scanner) checkName(b []byte, start, end int, high bool, what string) error {
	if end == start || nameTab[b[start]]&2 == 0 {
		return s.errAt(s.pos+start, ErrMalformed, "invalid "+what+" name")
	}
	if high && !utf8.Valid(b[start:end]) {
		return s.errAt(s.pos+start, ErrMalformed, "invalid UTF-8 in "+what+" name")
	}
	return nil
}

func localName(name []byte) []byte {
	if i := bytes.LastIndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return name
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// elementName scans the element name at b[start:]. It returns its end, or 0
// when b ends before the name does.
func (s *scanner) elementName(b []byte, start int) (int, error) {
	i, high := scanName(b, start)
	if i == len(b) {
		return 0, nil
	}
	return i, s.checkName(b, start, i, high, "element")
}

func (s *scanner) endTag(b []byte) (int, error) {
	i, err := s.elementName(b, 2)
	if err != nil || i == 0 {
		return 0, err
	}
	name := b[2:i]
	i = skipSpace(b, i)
	if i == len(b) {
		return 0, nil
	}
	if b[i] != '>' {
		return 0, s.errAt(s.pos+i, ErrMalformed, "invalid character in end tag")
	}
	if msg, class := s.st.pop(name); class != nil {
		return 0, s.errAt(s.pos, class, msg)
	}
	s.tok = token{kind: tokEnd, name: name, local: localName(name), attrs: s.tok.attrs[:0], off: s.base + int64(s.pos)}
	return i + 1, nil
}

func (s *scanner) startTag(b []byte) (int, error) {
	i, err := s.elementName(b, 1)
	if err != nil || i == 0 {
		return 0, err
	}
	name := b[1:i]
	attrs := s.tok.attrs[:0]
	selfClose := false
	for {
		i = skipSpace(b, i)
		if i == len(b) {
			return 0, nil
		}
		c := b[i]
		if c == '>' {
			i++
			break
		}
		if c == '/' {
			if i+1 == len(b) {
				return 0, nil
			}
			if b[i+1] != '>' {
				return 0, s.errAt(s.pos+i, ErrMalformed, "expected '>' after '/' in start tag")
			}
			i += 2
			selfClose = true
			break
		}
		nameStart := i
		var high bool
		i, high = scanName(b, i)
		if i == len(b) {
			return 0, nil
		}
		if i == nameStart || nameTab[b[nameStart]]&2 == 0 || high && !utf8.Valid(b[nameStart:i]) {
			return 0, s.checkName(b, nameStart, i, high, "attribute")
		}
		aname := b[nameStart:i]
		if b[i] != '=' { // white space around '=' is rare
			i = skipSpace(b, i)
			if i == len(b) {
				return 0, nil
			}
			if b[i] != '=' {
				return 0, s.errAt(s.pos+i, ErrMalformed, fmt.Sprintf("attribute %s has no value", clip(aname)))
			}
		}
		i++
		i = skipSpace(b, i)
		if i == len(b) {
			return 0, nil
		}
		q := b[i]
		if q != '"' && q != '\'' {
			return 0, s.errAt(s.pos+i, ErrMalformed, fmt.Sprintf("value of attribute %s is not quoted", clip(aname)))
		}
		i++
		vstart := i
		end, flags, bad := scanValue(b, i, q)
		if bad >= 0 {
			return 0, s.errAt(s.pos+bad, ErrMalformed, fmt.Sprintf("character %q not allowed in attribute value", b[bad]))
		}
		if end < 0 {
			if len(b)-vstart > s.maxAttr {
				return 0, s.errAt(s.pos+vstart, ErrLimit, fmt.Sprintf("attribute %s longer than MaxAttrBytes %d", clip(aname), s.maxAttr))
			}
			return 0, nil
		}
		i = end
		value := b[vstart:i]
		if len(value) > s.maxAttr {
			return 0, s.errAt(s.pos+vstart, ErrLimit, fmt.Sprintf("attribute %s longer than MaxAttrBytes %d", clip(aname), s.maxAttr))
		}
		if flags&vHigh != 0 && !utf8.Valid(value) {
			return 0, s.errAt(s.pos+vstart, ErrMalformed, fmt.Sprintf("invalid UTF-8 in value of attribute %s", clip(aname)))
		}
		attrs = append(attrs, attr{nlo: int32(nameStart), nhi: int32(nameStart + len(aname)), vlo: int32(vstart), vhi: int32(i), off: s.base + int64(s.pos+vstart), flags: flags})
		i++
	}
	if msg, class := s.st.push(name); class != nil {
		return 0, s.errAt(s.pos, class, msg)
	}
	s.pending = selfClose
	s.tok = token{kind: tokStart, name: name, local: localName(name), attrs: attrs, src: b, off: s.base + int64(s.pos)}
	return i, nil
}
