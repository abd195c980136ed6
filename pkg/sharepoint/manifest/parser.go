// Package manifest parses the XML files of a SharePoint AMR export package
// (Manifest*.xml, UserGroup.xml, SystemData.xml, ExportSettings.xml,
// RootObjectMap.xml, LookupListMap.xml, Requirements.xml, ViewFormsList.xml)
// into typed amrpipe.v1 records.
//
// The parser streams: it reads through a bounded window, yields one record per
// object, and keeps nothing between records, so memory stays flat whatever the
// file size. It never processes a DTD (DOCTYPE and ENTITY are rejected), bounds
// nesting depth and attribute size, and reports every parse error as a
// *SyntaxError with the byte offset. Attributes it does not model are kept in
// each record's extra map; EncodedAttributes (_xHHHH_) are decoded.
package manifest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Options configure a Parser. Zero values take the defaults.
type Options struct {
	// JobID and SourceFile are copied into every record.
	JobID      string
	SourceFile string
	// MaxDepth bounds element nesting (default 64).
	MaxDepth int
	// MaxAttrBytes bounds one attribute value (default 1 MiB).
	MaxAttrBytes int
	// MaxTokenBytes bounds one start tag with all its attributes, and so the
	// read window (default 4 MiB).
	MaxTokenBytes int
	// MaxChildren bounds the entries of one collection inside a record (a
	// RoleAssignment's Assignments, an item's Versions or Fields), and so the
	// memory one record can take (default 100,000: twice SharePoint's largest
	// documented per-object collection, 50,000 versions of an item; a scope's
	// principals are limited to 5,000).
	MaxChildren int
	// BufferSize is the initial read window (default 128 KiB).
	BufferSize int
	// StdlibXML makes the parser tokenize with encoding/xml instead of its own
	// scanner. It is about ten times slower and exists as the reference for
	// differential tests and benchmarks.
	StdlibXML bool
}

func (o Options) withDefaults() Options {
	if o.MaxDepth <= 0 {
		o.MaxDepth = 64
	}
	if o.MaxAttrBytes <= 0 {
		o.MaxAttrBytes = 1 << 20
	}
	if o.MaxTokenBytes <= 0 {
		o.MaxTokenBytes = 4 << 20
	}
	o.MaxTokenBytes = min(o.MaxTokenBytes, 1<<30) // offsets in a token are int32
	if o.MaxChildren <= 0 {
		o.MaxChildren = 100_000
	}
	if o.BufferSize <= 0 {
		o.BufferSize = 128 << 10
	}
	return o
}

// FileKind names the package file a parser is reading, from its root element.
type FileKind uint8

// The package files.
const (
	KindUnknown FileKind = iota
	KindManifest
	KindUserGroup
	KindSystemData
	KindExportSettings
	KindRootObjectMap
	KindLookupListMap
	KindRequirements
	KindViewFormsList
)

type rootSpec struct {
	element    string
	kind       FileKind
	namespaces []string
}

var rootSpecs = []rootSpec{
	{"SPObjects", KindManifest, []string{"urn:deployment-manifest-schema"}},
	{"UserGroupMap", KindUserGroup, []string{"urn:deployment-usergroupmap-schema"}},
	{"SystemData", KindSystemData, []string{"urn:deployment-systemdata-schema"}},
	{"ExportSettings", KindExportSettings, []string{"urn:deployment-exportsettings-schema"}},
	{"RootObjects", KindRootObjectMap, []string{"urn:deployment-rootobjectmap-schema"}},
	{"LookupLists", KindLookupListMap, []string{"urn:deployment-lookuplistmap-schema"}},
	{"Requirements", KindRequirements, []string{"urn:deployment-requirements-schema"}},
	// Generators disagree on the "s" (see fixtures SOURCES.md); accept both.
	{"ViewFormsList", KindViewFormsList, []string{"urn:deployment-viewformlist-schema", "urn:deployment-viewformslist-schema"}},
}

// String returns the root element name of the kind.
func (k FileKind) String() string {
	for _, r := range rootSpecs {
		if r.kind == k {
			return r.element
		}
	}
	return "unknown"
}

// What an open element contains, for the streaming state machine.
type frameKind uint8

const (
	frameManifest frameKind = iota + 1
	frameSPObject
	frameUserGroup
	frameSystemData
	frameExportSettings
	frameEntries // children are entries of frame.entry
)

type entryKind uint8

const (
	entryGeneric entryKind = iota // any element
	entryRole
	entryRoleAssignment
	entryUser
	entryGroup
	entryManifestFile
	entrySystemObject
	entryDeploymentObject
	entryRootObject
	entryLookupList
	entryRequirement
	entryViewForm
)

// entries gives, for each entry kind, its element name and builder.
var entries = [...]struct {
	element string // "" for any element
	build   func(*Parser, *token) (*amrpipev1.Record, error)
}{
	entryGeneric:          {"", (*Parser).genericEntry},
	entryRole:             {"Role", (*Parser).role},
	entryRoleAssignment:   {"RoleAssignment", (*Parser).roleAssignment},
	entryUser:             {"User", (*Parser).user},
	entryGroup:            {"Group", (*Parser).group},
	entryManifestFile:     {"ManifestFile", (*Parser).manifestFile},
	entrySystemObject:     {"SystemObject", (*Parser).systemObject},
	entryDeploymentObject: {"DeploymentObject", (*Parser).deploymentObject},
	entryRootObject:       {"RootObject", (*Parser).rootObject},
	entryLookupList:       {"LookupList", (*Parser).lookupList},
	entryRequirement:      {"Requirement", (*Parser).requirement},
	entryViewForm:         {"ViewForm", (*Parser).viewForm},
}

type frame struct {
	kind  frameKind
	entry entryKind
}

// kv is an attribute converted for a record: its name is in the token's src
// and its value in the element's string (Parser.key and Parser.v).
type kv struct {
	nlo, nhi int32
	lo, hi   int32
	off      int64
}

// Parser reads one package file. It is not safe for concurrent use.
type Parser struct {
	opts   Options
	sc     *scanner
	ref    *stdSource
	kind   FileKind
	frames []frame
	hdr    *amrpipev1.SPObjectHeader // header of the open SPObject, if any
	shared bool                      // hdr is already referenced by a record
	seq    uint64
	tmp    []byte
	vals   []byte // decoded values of the current element
	kvs    []kv
	src    []byte // src of the token whose attributes are in kvs
	cur    string // decoded values of the attributes in kvs
	strs   stringArena
	slabs  slabs
	// Children being collected for the element under construction.
	fields       pending[*amrpipev1.Field]
	assignments  pending[*amrpipev1.Assignment]
	fileVersions pending[*amrpipev1.FileVersion]
	itemVersions pending[*amrpipev1.ListItemVersion]
	enc          [][]byte // names listed in EncodedAttributes
	encSet       map[string]struct{}
	encBuf       []byte
	names        map[string]string // interned attribute names of extra maps
	verr         error             // first attribute value error of the element
	err          error             // sticky
}

// NewParser returns a parser reading r.
func NewParser(r io.Reader, opts Options) *Parser {
	opts = opts.withDefaults()
	p := &Parser{opts: opts, names: make(map[string]string)}
	if opts.StdlibXML {
		p.ref = newStdSource(r, opts)
	} else {
		p.sc = newScanner(r, opts)
	}
	return p
}

// Parse reads every record of r and calls fn for each, in document order. It
// stops at the first error from the input, from fn, or from ctx.
func Parse(ctx context.Context, r io.Reader, opts Options, fn func(*amrpipev1.Record) error) error {
	p := NewParser(r, opts)
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("manifest %s: %w", opts.SourceFile, err)
			}
		}
		rec, err := p.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return fmt.Errorf("manifest %s: record %d: %w", opts.SourceFile, rec.Sequence, err)
		}
	}
}

// Kind returns the file kind detected from the root element (KindUnknown
// before the first call to Next).
func (p *Parser) Kind() FileKind { return p.kind }

// Next returns the next record, or io.EOF after the last one. Parse errors are
// *SyntaxError; after an error every call returns the same error. Records are
// never reused, but their strings share backing chunks with other records:
// clone strings you keep for long (strings.Clone) so the chunks can be freed.
func (p *Parser) Next() (*amrpipev1.Record, error) {
	if p.err != nil {
		return nil, p.err
	}
	rec, err := p.advance()
	if err != nil {
		p.err = err
		return nil, err
	}
	return rec, nil
}

func (p *Parser) next() (*token, error) {
	if p.ref != nil {
		return p.ref.next()
	}
	return p.sc.next()
}

func (p *Parser) advance() (*amrpipev1.Record, error) {
	for {
		tok, err := p.next()
		if err != nil {
			return nil, err
		}
		if tok.kind == tokEnd {
			n := len(p.frames)
			if n == 0 {
				continue
			}
			closing := p.frames[n-1].kind
			p.frames = p.frames[:n-1]
			if closing != frameSPObject {
				continue
			}
			// An incremental export writes a deleted object as an SPObject with IsDeleted="true"
			// and no child element: it still is a record, the one that says the object is gone.
			var rec *amrpipev1.Record
			if p.hdr != nil && !p.shared && p.hdr.GetIsDeleted() {
				rec = p.newRecord(p.hdr.GetId(), p.hdr.GetObjectType())
			}
			p.hdr = nil
			if rec != nil {
				return rec, nil
			}
			continue
		}
		var rec *amrpipev1.Record
		if len(p.frames) == 0 {
			rec, err = p.root(tok)
		} else {
			rec, err = p.child(tok)
		}
		if err != nil || rec != nil {
			return rec, err
		}
	}
}

func (p *Parser) push(kind frameKind, entry entryKind) {
	p.frames = append(p.frames, frame{kind: kind, entry: entry})
}

// root detects the file kind. Only ExportSettings carries a record itself.
func (p *Parser) root(tok *token) (*amrpipev1.Record, error) {
	local := string(tok.local)
	var spec *rootSpec
	for i := range rootSpecs {
		if rootSpecs[i].element == local {
			spec = &rootSpecs[i]
		}
	}
	if spec == nil {
		return nil, p.syntaxErr(ErrUnknownRoot, tok.off, fmt.Sprintf("unknown root element %s", clip(tok.name)))
	}
	if ns, ok := rootNamespace(tok); ok && ns != "" && !contains(spec.namespaces, ns) {
		return nil, p.syntaxErr(ErrUnknownRoot, tok.off, fmt.Sprintf("root element %s has namespace %q, want %q", local, ns, spec.namespaces[0]))
	}
	p.kind = spec.kind
	switch spec.kind {
	case KindManifest:
		p.push(frameManifest, 0)
	case KindUserGroup:
		p.push(frameUserGroup, 0)
	case KindSystemData:
		p.push(frameSystemData, 0)
	case KindExportSettings:
		p.push(frameExportSettings, 0)
		return p.exportSettings(tok)
	case KindRootObjectMap:
		p.push(frameEntries, entryRootObject)
	case KindLookupListMap:
		p.push(frameEntries, entryLookupList)
	case KindRequirements:
		p.push(frameEntries, entryRequirement)
	case KindViewFormsList:
		p.push(frameEntries, entryViewForm)
	}
	return nil, nil
}

// rootNamespace returns the namespace bound to the root element's prefix.
func rootNamespace(tok *token) (string, bool) {
	want := "xmlns"
	if n := len(tok.name) - len(tok.local); n > 0 {
		want = "xmlns:" + string(tok.name[:n-1])
	}
	for i := range tok.attrs {
		a := &tok.attrs[i]
		if string(tok.attrName(a)) == want {
			v, _, _ := appendValue(nil, tok.attrValue(a), a.flags)
			return string(v), true
		}
	}
	return "", false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// containers lists the elements whose children are entries, by the frame
// they open in.
var containers = []struct {
	in      frameKind
	element string
	entry   entryKind
}{
	{frameManifest, "RoleAssignments", entryRoleAssignment}, // directly under the root, as in the permission guide
	{frameSPObject, "RoleAssignments", entryRoleAssignment}, // in a DeploymentRoleAssignments SPObject, as on import
	{frameSPObject, "Roles", entryRole},
	{frameUserGroup, "Users", entryUser},
	{frameUserGroup, "Groups", entryGroup},
	{frameSystemData, "ManifestFiles", entryManifestFile},
	{frameSystemData, "SystemObjects", entrySystemObject},
	{frameSystemData, "RootWebOnlyLists", entryGeneric},
	{frameExportSettings, "ExportObjects", entryDeploymentObject},
}

// child handles a start tag below the root: it opens a container or yields a
// record, consuming the element.
func (p *Parser) child(tok *token) (*amrpipev1.Record, error) {
	top := p.frames[len(p.frames)-1]
	switch {
	case top.kind == frameEntries:
		if e := entries[top.entry]; e.element == "" || string(tok.local) == e.element {
			return e.build(p, tok)
		}
		return nil, p.skip()
	case top.kind == frameManifest && string(tok.local) == "SPObject":
		hdr, err := p.spObjectHeader(tok)
		if err != nil {
			return nil, err
		}
		p.hdr, p.shared = hdr, false
		p.push(frameSPObject, 0)
		return nil, nil
	case top.kind == frameSystemData && string(tok.local) == "SchemaVersion":
		return p.schemaVersion(tok)
	}
	for _, c := range containers {
		if c.in == top.kind && c.element == string(tok.local) {
			p.push(frameEntries, c.entry)
			return nil, nil
		}
	}
	if top.kind == frameSPObject {
		return p.object(tok)
	}
	return nil, p.skip()
}

// skip consumes the rest of the element whose start tag was just read.
func (p *Parser) skip() error {
	for depth := 1; depth > 0; {
		tok, err := p.next()
		if err != nil {
			return err
		}
		if tok.kind == tokStart {
			depth++
		} else {
			depth--
		}
	}
	return nil
}

// children calls fn for each child start tag of the element just read, up to
// its end tag; fn must consume the child (build it or skip it).
func (p *Parser) children(fn func(*token) error) error {
	for n := 0; ; n++ {
		tok, err := p.next()
		if err != nil {
			return err
		}
		if tok.kind == tokEnd {
			return nil
		}
		if n == p.opts.MaxChildren {
			return p.syntaxErr(ErrLimit, tok.off, fmt.Sprintf("element %s: more than MaxChildren %d entries in one collection", clip(tok.name), p.opts.MaxChildren))
		}
		if err := fn(tok); err != nil {
			return err
		}
	}
}

// newRecord starts a record with the envelope fields and the SPObject header.
func (p *Parser) newRecord(objectID, objectType string) *amrpipev1.Record {
	rec := &amrpipev1.Record{
		JobId:      p.opts.JobID,
		SourceFile: p.opts.SourceFile,
		ObjectId:   objectID,
		ObjectType: objectType,
		Sequence:   p.seq,
	}
	p.seq++
	if p.hdr != nil {
		if p.shared { // several records from one SPObject (Roles): each gets its own copy
			rec.SpObject = proto.Clone(p.hdr).(*amrpipev1.SPObjectHeader)
		} else {
			rec.SpObject, p.shared = p.hdr, true
		}
	}
	return rec
}

func (p *Parser) syntaxErr(class error, off int64, msg string) error {
	line := 0
	if p.sc != nil {
		line = p.sc.lineOf(off)
	}
	return &SyntaxError{Offset: off, Line: line, Msg: msg, Err: class}
}

// attrs converts the attributes of tok to strings backed by one shared
// chunk, decoding entities and the attributes listed in EncodedAttributes.
// Namespace declarations and EncodedAttributes itself are dropped.
func (p *Parser) attrs(tok *token) ([]kv, error) {
	p.verr = nil
	enc := -1
	for i := range tok.attrs {
		a := &tok.attrs[i]
		if a.nhi-a.nlo == int32(len("EncodedAttributes")) && string(tok.attrName(a)) == "EncodedAttributes" {
			enc = i
		}
	}
	var names [][]byte
	if enc >= 0 {
		var err error
		if names, err = p.encodedNames(tok, &tok.attrs[enc]); err != nil {
			return nil, err
		}
	}
	// Values are gathered in a local buffer (no GC write barriers while it
	// grows) and copied into the string arena once per element.
	buf, kvs := p.vals[:0], p.kvs[:0]
	for i := range tok.attrs {
		a := &tok.attrs[i]
		if i == enc || a.nhi-a.nlo >= 5 && isNamespaceDecl(tok.attrName(a)) {
			continue
		}
		lo := len(buf)
		if a.flags&(vAmp|vWS) == 0 {
			buf = append(buf, tok.attrValue(a)...)
		} else {
			var err error
			if buf, err = p.appendAttr(buf, tok, a); err != nil {
				return nil, err
			}
		}
		if names != nil && p.listed(tok.attrName(a)) {
			p.tmp = appendDecodedName(p.tmp[:0], buf[lo:])
			buf = append(buf[:lo], p.tmp...)
		}
		kvs = append(kvs, kv{nlo: a.nlo, nhi: a.nhi, lo: int32(lo), hi: int32(len(buf)), off: a.off})
	}
	p.vals, p.kvs, p.src, p.cur = buf, kvs, tok.src, p.strs.copy(buf)
	return kvs, nil
}

// each converts the attributes of tok and hands each to set; those set does
// not model (it returns false) go to extra. It returns the first conversion or
// value error.
func (p *Parser) each(tok *token, extra *map[string]string, set func(a *kv) bool) error {
	kvs, err := p.attrs(tok)
	if err != nil {
		return err
	}
	for i := range kvs {
		if a := &kvs[i]; !set(a) {
			p.put(extra, a)
		}
	}
	return p.done()
}

// encodedNames returns the names listed in the EncodedAttributes attribute a.
func (p *Parser) encodedNames(tok *token, a *attr) ([][]byte, error) {
	var err error
	if p.encBuf, err = p.appendAttr(p.encBuf[:0], tok, a); err != nil {
		return nil, err
	}
	p.enc = p.enc[:0]
	for rest := p.encBuf; len(rest) > 0; {
		name := rest
		if j := indexByte(rest, ','); j >= 0 {
			name, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		p.enc = append(p.enc, trimSpace(name))
	}
	if len(p.enc) > 16 {
		if p.encSet == nil {
			p.encSet = make(map[string]struct{})
		}
		clear(p.encSet)
		for _, n := range p.enc {
			p.encSet[string(n)] = struct{}{}
		}
	}
	return p.enc, nil
}

// appendAttr appends the logical value of a to dst.
func (p *Parser) appendAttr(dst []byte, tok *token, a *attr) ([]byte, error) {
	if a.flags&vFinal != 0 {
		return append(dst, tok.attrValue(a)...), nil
	}
	dst, bad, msg := appendValue(dst, tok.attrValue(a), a.flags)
	if bad >= 0 {
		return dst, p.syntaxErr(ErrMalformed, a.off+int64(bad), msg)
	}
	return dst, nil
}

// listed reports whether EncodedAttributes names name. A long list (never
// seen in real output, but cheap to send) is looked up in a set, so that a
// hostile element cannot make this quadratic.
func (p *Parser) listed(name []byte) bool {
	if len(p.enc) > 16 {
		_, ok := p.encSet[string(name)]
		return ok
	}
	for _, n := range p.enc {
		if string(n) == string(name) {
			return true
		}
	}
	return false
}

func isNamespaceDecl(name []byte) bool {
	return len(name) >= 5 && string(name[:5]) == "xmlns" && (len(name) == 5 || name[5] == ':')
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// key returns the name of an attribute of the current element.
func (p *Parser) key(a *kv) []byte { return p.src[a.nlo:a.nhi] }

// v returns the decoded value of an attribute of the current element.
func (p *Parser) v(a *kv) string { return p.cur[a.lo:a.hi] }

// badValue records the first attribute value that does not fit its type.
func (p *Parser) badValue(a *kv, what string) {
	if p.verr == nil {
		v := p.v(a)
		if len(v) > 64 {
			v = v[:64] + "..."
		}
		p.verr = p.syntaxErr(ErrInvalidValue, a.off, fmt.Sprintf("attribute %s: %q is not a valid %s", p.key(a), v, what))
	}
}

// intv parses a decimal integer of the given bit size (0 if empty).
func (p *Parser) intv(a *kv, bits int) int64 {
	v := p.v(a)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, bits)
	if err != nil {
		p.badValue(a, strconv.Itoa(bits)+"-bit integer")
	}
	return n
}

func (p *Parser) int64v(a *kv) int64 { return p.intv(a, 64) }

func (p *Parser) int32v(a *kv) int32 { return int32(p.intv(a, 32)) }

func (p *Parser) floatv(a *kv) float64 {
	v := p.v(a)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		p.badValue(a, "number")
	}
	return f
}

func (p *Parser) boolv(a *kv) bool {
	switch p.v(a) {
	case "true", "True", "TRUE", "1":
		return true
	case "false", "False", "FALSE", "0", "":
		return false
	}
	p.badValue(a, "boolean")
	return false
}

func (p *Parser) timev(a *kv) *timestamppb.Timestamp {
	v := p.v(a)
	if v == "" {
		return nil
	}
	t, ok := parseTime(v)
	if !ok {
		p.badValue(a, "time")
		return nil
	}
	ts := p.slabs.timestamp()
	ts.Seconds, ts.Nanos = t.Unix(), int32(t.Nanosecond())
	return ts
}

// principal parses a user or group id. The import schema types these as
// strings, so a value that is not an integer is kept in extra, not rejected.
func (p *Parser) principal(a *kv, extra *map[string]string) int64 {
	n, err := strconv.ParseInt(p.v(a), 10, 64)
	if err != nil && p.v(a) != "" {
		p.put(extra, a)
	}
	return n
}

// put stores an attribute the record does not model.
func (p *Parser) put(m *map[string]string, a *kv) {
	if *m == nil {
		*m = make(map[string]string, 4)
	}
	(*m)[p.intern(p.key(a))] = p.v(a)
}

// done returns the first attribute value error of the element.
func (p *Parser) done() error {
	err := p.verr
	p.verr = nil
	return err
}
