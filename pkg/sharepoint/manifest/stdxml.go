package manifest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// stdSource is the reference tokenizer: encoding/xml's RawToken with the same
// document rules as the scanner (no DTD, one root, tag matching, limits). It
// yields the same tokens, with values already decoded.
type stdSource struct {
	dec     *xml.Decoder
	maxAttr int
	st      elemStack
	scratch []byte
	tok     token
	err     error
}

func newStdSource(r io.Reader, o Options) *stdSource {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	return &stdSource{dec: dec, maxAttr: o.MaxAttrBytes, st: elemStack{maxDepth: o.MaxDepth}}
}

func (s *stdSource) fail(class error, msg string) error {
	s.err = &SyntaxError{Offset: s.dec.InputOffset(), Msg: msg, Err: class}
	return s.err
}

func (s *stdSource) next() (*token, error) {
	if s.err != nil {
		return nil, s.err
	}
	for {
		off := s.dec.InputOffset()
		t, err := s.dec.RawToken()
		if errors.Is(err, io.EOF) {
			if msg := s.st.eofError(); msg != "" {
				return nil, s.fail(ErrMalformed, msg)
			}
			s.err = io.EOF
			return nil, io.EOF
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				s.err = &SyntaxError{Offset: s.dec.InputOffset(), Line: se.Line, Msg: se.Msg, Err: ErrMalformed}
				return nil, s.err
			}
			s.err = fmt.Errorf("manifest: read: %w", err)
			return nil, s.err
		}
		switch t := t.(type) {
		case xml.StartElement:
			return s.start(t, off)
		case xml.EndElement:
			s.scratch = appendQName(s.scratch[:0], t.Name)
			if msg, class := s.st.pop(s.scratch); class != nil {
				return nil, s.fail(class, msg)
			}
			s.tok = token{kind: tokEnd, name: s.scratch, local: localName(s.scratch), attrs: s.tok.attrs[:0], off: off}
			return &s.tok, nil
		case xml.CharData:
			if s.st.depth() == 0 && len(bytes.TrimLeft(t, " \t\r\n")) > 0 {
				return nil, s.fail(ErrMalformed, "text outside the root element")
			}
		case xml.Directive:
			return nil, s.fail(ErrDTD, "DOCTYPE or other markup declaration is not allowed")
		case xml.ProcInst, xml.Comment:
		}
	}
}

func appendQName(dst []byte, n xml.Name) []byte {
	if n.Space != "" {
		dst = append(append(dst, n.Space...), ':')
	}
	return append(dst, n.Local...)
}

func (s *stdSource) start(t xml.StartElement, off int64) (*token, error) {
	// One scratch buffer holds the element name and all attribute names and
	// values; the slices are taken once it has stopped growing.
	s.scratch = appendQName(s.scratch[:0], t.Name)
	nameEnd := len(s.scratch)
	for _, a := range t.Attr {
		if len(a.Value) > s.maxAttr {
			return nil, s.fail(ErrLimit, fmt.Sprintf("attribute %s longer than MaxAttrBytes %d", a.Name.Local, s.maxAttr))
		}
		s.scratch = appendQName(s.scratch, a.Name)
		s.scratch = append(s.scratch, a.Value...)
	}
	name := s.scratch[:nameEnd]
	attrs := s.tok.attrs[:0]
	pos := nameEnd
	for _, a := range t.Attr {
		n := len(a.Name.Local)
		if a.Name.Space != "" {
			n += len(a.Name.Space) + 1
		}
		attrs = append(attrs, attr{nlo: int32(pos), nhi: int32(pos + n), vlo: int32(pos + n), vhi: int32(pos + n + len(a.Value)), off: off, flags: vFinal})
		pos += n + len(a.Value)
	}
	if msg, class := s.st.push(name); class != nil {
		return nil, s.fail(class, msg)
	}
	s.tok = token{kind: tokStart, name: name, local: localName(name), attrs: attrs, src: s.scratch, off: off}
	return &s.tok, nil
}
