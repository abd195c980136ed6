// Package export writes what SharePoint's Asynchronous Metadata Read (AMR) writes into the manifest
// container for one job: the PRIME / content-deployment package (Manifest.xml split into
// Manifest1.xml, Manifest2.xml, … at the size limit, UserGroup.xml, ExportSettings.xml,
// RootObjectMap.xml, LookupListMap.xml, Requirements.xml, ViewFormsList.xml, SystemData.xml), each
// optionally AES-256-CBC encrypted with its IV in the blob's `IV` metadata.
//
// Formats follow the project's protocol notes (amr-protocol.md §3.2 and §4) and the public
// sp-dev-docs samples; where SharePoint's output is unknown the choice is documented where it is made.
// The Writer streams: it holds at most the current manifest part in memory and hands each finished
// blob to a Sink.
package export

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// DefaultMaxManifestBytes is the manifest split threshold: SharePoint splits "around 24-25 MB".
const DefaultMaxManifestBytes = 25 << 20

// MetadataIV is the blob metadata key that carries the base64 IV of an encrypted blob.
const MetadataIV = "IV"

// Sink receives finished package files.
type Sink interface {
	// Put stores one finished blob named "<JobID>/<file>" with its metadata (nil when unencrypted).
	// The server uploads it to Azure Storage through the job's SAS and then emits one
	// FinishManifestFileUpload event for it; Put is therefore only called for complete files.
	// data is only valid during the call: the Writer reuses the buffer afterwards.
	Put(ctx context.Context, name string, data []byte, metadata map[string]*string) error
}

// Root is one URL of the job as SharePoint resolved it; it feeds ExportSettings.xml
// (DeploymentObject) and RootObjectMap.xml (RootObject).
type Root struct {
	ID       string // GUID of the list, folder or file
	Type     string // "List", "Folder", "File" or "ListItem" (SPDeploymentObjectType)
	ParentID string // GUID of the parent: the web for a list, the parent folder otherwise
	URL      string // server-relative, e.g. "/sites/hr/Shared Documents"
	WebID    string // GUID of the containing web
	WebURL   string // server-relative, e.g. "/sites/hr"
}

// Options configures a Writer for one job.
type Options struct {
	JobID            string
	SiteURL          string             // absolute, written to ExportSettings/@SiteUrl
	Key              []byte             // AES-256 key; nil means no encryption
	MaxManifestBytes int                // split threshold for stored manifest blobs; 0 means DefaultMaxManifestBytes
	ReadOptions      tenant.ReadOptions // the job's options, summarised in ExportSettings
	ChangeToken      string             // CurrentChangeToken of the job, ExportSettings/@ExportChangeToken
	Targets          []Root             // the job's URLs
	Rand             io.Reader          // IV source; nil means crypto/rand
	// FolderTotals writes the hidden SMTotalFileCount and SMTotalSize fields into each folder's
	// list item. Microsoft tells readers to size folders by SMTotalFileCount, but no public AMR
	// output shows the field in Manifest.xml (docs/amr-protocol.md §4.1), so it is off by default.
	FolderTotals bool
	// Buffer, when not nil, is where the package's files are built (its contents are
	// overwritten): the buffer of an earlier writer (Writer.Buffer), already grown to the
	// manifest size, instead of a new one grown to it (a 25 MB part allocated and cleared again
	// for every job was a twentieth of the demo's CPU).
	Buffer []byte
}

// Writer builds the package of one job. It is not safe for concurrent use.
type Writer struct {
	ctx   context.Context
	sink  Sink
	opts  Options
	block cipher.Block // nil when unencrypted
	rand  io.Reader

	// partLimit is the largest plaintext manifest part (closing tag included) whose stored blob
	// still fits in MaxManifestBytes.
	partLimit   int
	buf         []byte // the file being built: the current manifest part, or another package file
	tail        []byte // an object that did not fit, carried over to the next part
	spare       []byte // buf once closed, for Buffer
	partObjects int    // objects in the current part
	manifests   []string
	files       []string
	closed      bool
	err         error // sticky: once a Put fails, the package is incomplete

	el elementState
}

// ErrClosed is returned by Add and Close after Close.
var ErrClosed = errors.New("export: writer closed")

// NewWriter validates opts and starts Manifest.xml. Nothing reaches the sink before the first part
// is full or Close is called.
func NewWriter(ctx context.Context, sink Sink, opts Options) (*Writer, error) {
	if sink == nil {
		return nil, errors.New("export: nil sink")
	}
	if opts.JobID == "" {
		return nil, errors.New("export: empty job id")
	}
	if opts.MaxManifestBytes <= 0 {
		opts.MaxManifestBytes = DefaultMaxManifestBytes
	}
	w := &Writer{ctx: ctx, sink: sink, opts: opts, rand: opts.Rand, buf: opts.Buffer[:0]}
	w.opts.Buffer = nil
	if w.rand == nil {
		w.rand = rand.Reader
	}
	w.partLimit = opts.MaxManifestBytes
	if opts.Key != nil {
		if len(opts.Key) != 32 {
			return nil, fmt.Errorf("export: AES-256 key must be 32 bytes, got %d", len(opts.Key))
		}
		block, err := aes.NewCipher(opts.Key)
		if err != nil {
			return nil, fmt.Errorf("export: aes key: %w", err)
		}
		w.block = block
		// PKCS#7 always adds 1..16 bytes, so the plaintext must stay below the last whole block.
		w.partLimit = opts.MaxManifestBytes&^(aes.BlockSize-1) - 1
	}
	w.startPart()
	return w, nil
}

const (
	xmlDecl        = `<?xml version="1.0" encoding="utf-8"?>` + "\n"
	manifestOpen   = xmlDecl + `<SPObjects xmlns="urn:deployment-manifest-schema">` + "\n"
	manifestClose  = "</SPObjects>\n"
	manifestPrefix = "Manifest"
)

func (w *Writer) startPart() {
	w.buf = append(w.buf[:0], manifestOpen...)
	w.partObjects = 0
}

// Add appends one SPObject to the current manifest part. When the part with this object would
// exceed MaxManifestBytes, the part is finished and stored first and the object starts the next
// one; an object larger than the limit on its own gets a part to itself.
func (w *Writer) Add(o *tenant.Object) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if o == nil {
		return errors.New("export: nil object")
	}
	w.reserve()
	mark := len(w.buf)
	if err := w.writeObject(o); err != nil {
		w.buf = w.buf[:mark]
		return err
	}
	if w.partObjects > 0 && len(w.buf)+len(manifestClose) > w.partLimit {
		w.tail = append(w.tail[:0], w.buf[mark:]...)
		w.buf = w.buf[:mark]
		if err := w.finishPart(); err != nil {
			return err
		}
		w.buf = append(w.buf, w.tail...)
	}
	w.partObjects++
	return nil
}

// objectReserve is the room Add makes before writing an object: more than most objects take, so
// that the appends of one object rarely grow the buffer themselves.
const objectReserve = 64 << 10

// reserve doubles the part's buffer (up to its limit) when less than objectReserve is left.
// append alone grows a slice this large by a quarter at a time, which copied a 25 MB part about
// five times over (runtime.growslice was a twentieth of the demo's CPU); doubling copies it once.
func (w *Writer) reserve() {
	if cap(w.buf)-len(w.buf) >= objectReserve {
		return
	}
	more := max(len(w.buf), objectReserve)
	if limit := w.partLimit + objectReserve; len(w.buf)+more > limit {
		more = max(limit-len(w.buf), objectReserve)
	}
	w.buf = slices.Grow(w.buf, more)
}

// finishPart closes the current part, stores it and starts the next one.
func (w *Writer) finishPart() error {
	name := manifestPrefix + ".xml"
	if n := len(w.manifests); n > 0 {
		name = manifestPrefix + strconv.Itoa(n) + ".xml"
	}
	w.buf = append(w.buf, manifestClose...)
	if err := w.put(name); err != nil {
		return err
	}
	w.manifests = append(w.manifests, name)
	w.startPart()
	return nil
}

// put encrypts w.buf in place when a key is set and hands it to the sink as "<JobID>/<file>".
func (w *Writer) put(file string) error {
	var metadata map[string]*string
	if w.block != nil {
		var iv [aes.BlockSize]byte
		if _, err := io.ReadFull(w.rand, iv[:]); err != nil {
			w.err = fmt.Errorf("export: iv for %s: %w", file, err)
			return w.err
		}
		pad := aes.BlockSize - len(w.buf)%aes.BlockSize
		for range pad {
			w.buf = append(w.buf, byte(pad))
		}
		cipher.NewCBCEncrypter(w.block, iv[:]).CryptBlocks(w.buf, w.buf)
		ivText := base64.StdEncoding.EncodeToString(iv[:])
		metadata = map[string]*string{MetadataIV: &ivText}
	}
	name := w.opts.JobID + "/" + file
	if err := w.sink.Put(w.ctx, name, w.buf, metadata); err != nil {
		w.err = fmt.Errorf("export: put %s: %w", name, err)
		return w.err
	}
	w.files = append(w.files, name)
	return nil
}

// Close stores the last manifest part and then the other package files, SystemData.xml last
// (it lists every manifest part). users and groups go to UserGroup.xml.
func (w *Writer) Close(users []tenant.User, groups []tenant.Group) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	w.closed = true
	if err := w.finishPart(); err != nil {
		return err
	}
	steps := []struct {
		file  string
		build func()
	}{
		{"UserGroup.xml", func() { w.buildUserGroup(users, groups) }},
		{"ExportSettings.xml", w.buildExportSettings},
		{"RootObjectMap.xml", w.buildRootObjectMap},
		{"LookupListMap.xml", func() { w.buildEmpty("LookupLists", "urn:deployment-lookuplistmap-schema") }},
		{"Requirements.xml", func() { w.buildEmpty("Requirements", "urn:deployment-requirements-schema") }},
		{"ViewFormsList.xml", func() { w.buildEmpty("ViewFormsList", "urn:deployment-viewformlist-schema") }},
		{"SystemData.xml", w.buildSystemData},
	}
	for _, s := range steps {
		w.buf = append(w.buf[:0], xmlDecl...)
		s.build()
		if err := w.put(s.file); err != nil {
			return err
		}
	}
	w.spare, w.buf, w.tail = w.buf[:0], nil, nil
	return nil
}

// Buffer hands over, once the writer is closed, the buffer it built the files in, for
// Options.Buffer of another writer (nil before Close, after a failed one, and the second time).
func (w *Writer) Buffer() []byte {
	b := w.spare
	w.spare = nil
	return b
}

// Files returns the blob names stored so far, in order.
func (w *Writer) Files() []string {
	return append([]string(nil), w.files...)
}

// Manifests returns the manifest part file names stored so far ("Manifest.xml", "Manifest1.xml", …).
func (w *Writer) Manifests() []string {
	return append([]string(nil), w.manifests...)
}
