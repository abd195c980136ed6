package export

import (
	"strconv"
	"time"
)

// elementState tracks the start tag being written. A start tag is written optimistically with
// plain escaping; if one of its values is not XML, the tag is cut off and written again with the
// EncodedAttributes rule (see open).
type elementState struct {
	invalid bool   // the plain pass met a value that is not XML 1.0
	encode  bool   // the encoding pass is running
	names   []byte // comma-separated EncodedAttributes of the encoding pass
}

// timeLayout is SharePoint's manifest time format: UTC without a zone designator.
const timeLayout = "2006-01-02T15:04:05"

// open writes indent, '<', name and the attributes that attrs writes, leaving the tag open.
//
// EncodedAttributes rule: when any attribute value of the element contains a character that is
// not an XML 1.0 Char (C0 controls other than tab/LF/CR, U+FFFE, U+FFFF, invalid UTF-8), every
// encodable attribute of the element (attrEnc: URLs, names, titles, versions, free text, extended
// attributes), plus any other attribute holding such a character, is written with EncodeName and
// listed, in order, in a trailing EncodedAttributes attribute. This matches the SharePoint sample
// (amr-protocol.md §4.3), where Url, ParentWebUrl, Name and Version are all encoded and listed even
// though Name needed no escaping. Elements without such characters are written plainly, as in the
// AMR sample `File Url="SampleDocLib/Forms/AllItems.aspx"`.
func (w *Writer) open(indent, name string, attrs func()) {
	start := len(w.buf)
	w.element(indent, name)
	w.el.invalid = false
	attrs()
	if !w.el.invalid {
		return
	}
	w.buf = w.buf[:start]
	w.element(indent, name)
	w.el.encode, w.el.names = true, w.el.names[:0]
	attrs()
	w.el.encode, w.el.invalid = false, false
	w.buf = append(w.buf, ` EncodedAttributes="`...)
	w.buf = append(w.buf, w.el.names...)
	w.buf = append(w.buf, '"')
}

// endEmpty closes an open start tag as an empty element.
func (w *Writer) endEmpty() { w.buf = append(w.buf, " />\n"...) }

// endOpen closes an open start tag that will have children.
func (w *Writer) endOpen() { w.buf = append(w.buf, ">\n"...) }

// endChildren closes an open start tag for n children, as an empty element when n is 0; it reports
// whether the element is open (and needs a closeTag).
func (w *Writer) endChildren(n int) bool {
	if n == 0 {
		w.endEmpty()
		return false
	}
	w.endOpen()
	return true
}

// emptyOrOpen writes <name /> when n is 0 and leaves <name> open otherwise; it reports whether the
// element is open.
func (w *Writer) emptyOrOpen(indent, name string, n int) bool {
	w.element(indent, name)
	return w.endChildren(n)
}

// closeTag writes an end tag on its own line.
func (w *Writer) closeTag(indent, name string) {
	w.buf = append(w.buf, indent...)
	w.buf = append(w.buf, "</"...)
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, ">\n"...)
}

// element writes a start tag without attributes.
func (w *Writer) element(indent, name string) {
	w.buf = append(w.buf, indent...)
	w.buf = append(w.buf, '<')
	w.buf = append(w.buf, name...)
}

func (w *Writer) attrName(name string) {
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, '=', '"')
}

// attr writes an attribute that SharePoint does not list in EncodedAttributes (ids, counts,
// enumerations).
func (w *Writer) attr(name, v string) { w.attrValue(name, v, false) }

// attrEnc writes an attribute that is encoded whenever its element is.
func (w *Writer) attrEnc(name, v string) { w.attrValue(name, v, true) }

func (w *Writer) attrValue(name, v string, encodable bool) {
	if w.el.invalid && !w.el.encode {
		return // this pass is thrown away
	}
	w.attrName(name)
	if w.el.encode && (encodable || !validXML(v)) {
		w.buf = appendEncodedName(w.buf, v)
		if len(w.el.names) > 0 {
			w.el.names = append(w.el.names, ',')
		}
		w.el.names = append(w.el.names, name...)
	} else {
		var ok bool
		if w.buf, ok = appendAttrValue(w.buf, v); !ok {
			w.el.invalid = true
			return
		}
	}
	w.buf = append(w.buf, '"')
}

// attrConst writes a value known to need no escaping (constants of this package).
func (w *Writer) attrConst(name, v string) {
	w.attrName(name)
	w.buf = append(w.buf, v...)
	w.buf = append(w.buf, '"')
}

func (w *Writer) attrInt(name string, v int64) {
	w.attrName(name)
	w.buf = strconv.AppendInt(w.buf, v, 10)
	w.buf = append(w.buf, '"')
}

func (w *Writer) attrBool(name string, v bool) {
	w.attrName(name)
	w.buf = strconv.AppendBool(w.buf, v)
	w.buf = append(w.buf, '"')
}

// attrTime writes t in UTC as SharePoint does ("2023-05-11T05:19:48"); a zero time is omitted.
func (w *Writer) attrTime(name string, t time.Time) {
	if t.IsZero() {
		return
	}
	w.attrName(name)
	w.buf = appendTime(w.buf, t)
	w.buf = append(w.buf, '"')
}

// appendTime appends t in UTC in timeLayout; by hand because it runs several times per object and
// time.AppendFormat parses the layout on every call.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, timeLayout)
	}
	dst = append(dst, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-')
	dst = appendTwoDigits(dst, int(month))
	dst = append(dst, '-')
	dst = appendTwoDigits(dst, day)
	dst = append(dst, 'T')
	dst = appendTwoDigits(dst, hour)
	dst = append(dst, ':')
	dst = appendTwoDigits(dst, minute)
	dst = append(dst, ':')
	return appendTwoDigits(dst, second)
}

func appendTwoDigits(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

// attrNonEmpty writes a plain attribute only when v is set.
func (w *Writer) attrNonEmpty(name, v string) {
	if v != "" {
		w.attr(name, v)
	}
}

// attrUser writes a user id (Author, ModifiedBy); 0 means unknown and is omitted.
func (w *Writer) attrUser(name string, id int) {
	if id != 0 {
		w.attrInt(name, int64(id))
	}
}
