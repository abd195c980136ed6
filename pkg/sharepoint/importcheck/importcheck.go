// Package importcheck checks a migration engine's prepared import package (the SharePoint
// Migration API's import side: a content container and a manifest container) against
// Microsoft's content-preparation rules, one finding per rule, naming the offending blob. The
// rules and their sources are in docs/amr-protocol.md §10; what is not confirmed is said there.
package importcheck

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/amrpipe/amrpipe/pkg/crypto/quickxorhash"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

// Limits from "Preparing the content for Migration API".
const (
	MaxFileBytes        = 15 << 30  // files up to 15 GB
	AdvisedPackageBytes = 250 << 20 // keep a package under 250 MB ...
	AdvisedPackageItems = 250       // ... or 250 items
	MaxArchiveBytes     = 10 << 20  // an archive: 10 MB maximum
	MaxArchives         = 2         // two archives per package maximum
	MaxArchivedFile     = 100 << 10 // each archived file under 100 KB after encryption
)

// Status is a rule's verdict.
type Status string

// Verdicts; a warning is advice (package size), not a rule SharePoint enforces.
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Finding is one rule's verdict, with the blob that broke it.
type Finding struct {
	Rule   string `json:"rule"`
	Status Status `json:"status"`
	Blob   string `json:"blob,omitempty"`
	Detail string `json:"detail"`
}

// Failed counts the failed findings.
func Failed(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Status == Fail {
			n++
		}
	}
	return n
}

// Package locates an import package: the two container SAS URLs and an optional blob prefix.
type Package struct {
	ContentSAS, ManifestSAS string
	Prefix                  string
}

type blob struct {
	name     string
	size     int64
	snapshot bool
}

// Check applies every rule at now.
func Check(ctx context.Context, p Package, now time.Time) ([]Finding, error) {
	var out []Finding
	add := func(rule string, st Status, blob, detail string) {
		out = append(out, Finding{Rule: rule, Status: st, Blob: blob, Detail: detail})
	}
	sasRule := func(rule string, check func(string, time.Time) error, raw string) {
		if err := check(raw, now); err != nil {
			add(rule, Fail, "", sas.Redact(err.Error()))
			return
		}
		add(rule, Pass, "", "permissions as required, not expired")
	}
	sasRule("content SAS Read+List only", sas.CheckImportContentAt, p.ContentSAS)
	sasRule("manifest SAS Read+List+Write only", sas.CheckImportManifestAt, p.ManifestSAS)
	ci, cerr := sas.ParseContainer(p.ContentSAS)
	mi, merr := sas.ParseContainer(p.ManifestSAS)
	if cerr != nil || merr != nil {
		return out, errors.Join(cerr, merr)
	}
	if strings.EqualFold(ci.Host, mi.Host) && ci.Account == mi.Account && ci.Name == mi.Name {
		add("content and manifest in different containers", Fail, "", "both are "+ci.Label())
	} else {
		add("content and manifest in different containers", Pass, "", ci.Label()+" and "+mi.Label())
	}

	content, err := container.NewClientWithNoCredential(p.ContentSAS, nil)
	if err != nil {
		return out, fmt.Errorf("content container: %w", sas.RedactError(err))
	}
	manifests, err := container.NewClientWithNoCredential(p.ManifestSAS, nil)
	if err != nil {
		return out, fmt.Errorf("manifest container: %w", sas.RedactError(err))
	}
	blobs, err := list(ctx, content, p.Prefix)
	if err != nil {
		return out, fmt.Errorf("list %s: %w", ci.Label(), err)
	}
	out = append(out, contentRules(blobs)...)
	archives, err := archiveRules(ctx, content, manifests, p.Prefix, blobs)
	return append(out, archives...), err
}

// list returns the base blobs under prefix, each marked when it has a snapshot.
func list(ctx context.Context, c *container.Client, prefix string) ([]blob, error) {
	var out []blob
	index := map[string]int{}
	pager := c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix, Include: container.ListBlobsInclude{Snapshots: true}})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, sas.RedactError(err)
		}
		for _, it := range page.Segment.BlobItems {
			name := *it.Name
			i, ok := index[name]
			if !ok {
				i = len(out)
				index[name] = i
				out = append(out, blob{name: name})
			}
			if it.Snapshot != nil && *it.Snapshot != "" {
				out[i].snapshot = true
			} else if it.Properties != nil && it.Properties.ContentLength != nil {
				out[i].size = *it.Properties.ContentLength
			}
		}
	}
	return out, nil
}

func contentRules(blobs []blob) []Finding {
	var out []Finding
	var noSnap, tooBig []string
	var total int64
	for _, b := range blobs {
		total += b.size
		if !b.snapshot {
			noSnap = append(noSnap, b.name)
		}
		if b.size > MaxFileBytes {
			tooBig = append(tooBig, b.name)
		}
	}
	out = append(out, each("snapshot on every content blob", noSnap, "has no snapshot: SharePoint fails to import it (create one after uploading)", len(blobs))...)
	out = append(out, each("files up to 15 GB", tooBig, "is over 15 GB", len(blobs))...)
	if total > AdvisedPackageBytes || len(blobs) > AdvisedPackageItems {
		out = append(out, Finding{Rule: "package under 250 MB or 250 items", Status: Warn,
			Detail: fmt.Sprintf("%d blobs, %d bytes: Microsoft advises smaller packages for the best performance", len(blobs), total)})
	} else {
		out = append(out, Finding{Rule: "package under 250 MB or 250 items", Status: Pass, Detail: fmt.Sprintf("%d blobs, %d bytes", len(blobs), total)})
	}
	return out
}

// each is one failing finding per offending blob, or one pass.
func each(rule string, bad []string, why string, of int) []Finding {
	if len(bad) == 0 {
		return []Finding{{Rule: rule, Status: Pass, Detail: fmt.Sprintf("all %d blobs", of)}}
	}
	out := make([]Finding, 0, len(bad))
	for _, b := range bad {
		out = append(out, Finding{Rule: rule, Status: Fail, Blob: b, Detail: b + " " + why})
	}
	return out
}

// archivedFiles is ArchivedFiles.xml: <ArchivedFiles><ArchivedFile Name Checksum><File FileValue/>.
type archivedFiles struct {
	Archives []struct {
		Name     string `xml:"Name,attr"`
		Checksum string `xml:"Checksum,attr"`
		Files    []struct {
			FileValue string `xml:"FileValue,attr"`
		} `xml:"File"`
	} `xml:"ArchivedFile"`
}

const archiveRule = "ArchivedFiles.xml"

func archiveRules(ctx context.Context, content, manifests *container.Client, prefix string, blobs []blob) ([]Finding, error) {
	name := path.Join(prefix, "ArchivedFiles.xml")
	data, err := download(ctx, manifests, name, 1<<20)
	if errors.Is(err, errNotFound) {
		return []Finding{{Rule: archiveRule, Status: Pass, Detail: "no " + name + " in the manifest container: archives not used"}}, nil
	}
	if err != nil {
		return nil, err
	}
	var af archivedFiles
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&af); err != nil {
		return []Finding{{Rule: archiveRule, Status: Fail, Blob: name, Detail: "not well-formed: " + err.Error()}}, nil
	}
	var out []Finding
	if len(af.Archives) > MaxArchives {
		out = append(out, Finding{Rule: "at most two archives per package", Status: Fail, Blob: name, Detail: fmt.Sprintf("%s lists %d archives", name, len(af.Archives))})
	} else {
		out = append(out, Finding{Rule: "at most two archives per package", Status: Pass, Detail: fmt.Sprintf("%d archives", len(af.Archives))})
	}
	sizes := map[string]int64{}
	for _, b := range blobs {
		sizes[b.name] = b.size
	}
	fileSizes, err := manifestFileSizes(ctx, manifests, prefix)
	if err != nil {
		return out, err
	}
	for _, a := range af.Archives {
		blobName := path.Join(prefix, a.Name)
		size, ok := sizes[blobName]
		if !ok {
			out = append(out, Finding{Rule: "archive present", Status: Fail, Blob: blobName, Detail: blobName + " is listed in " + name + " but not in the content container"})
			continue
		}
		out = append(out, verdict("archive up to 10 MB", size <= MaxArchiveBytes, blobName, fmt.Sprintf("%s is %d bytes", blobName, size)))
		got, head, n, err := hashBlob(ctx, content, blobName)
		if err != nil {
			return out, err
		}
		plainZip := bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06"))
		out = append(out, verdict("archive encrypted", !plainZip && n%16 == 0, blobName,
			fmt.Sprintf("%s: %d bytes, plain zip signature %v (AES-CBC output is a multiple of 16 bytes and has no zip header)", blobName, n, plainZip)))
		out = append(out, verdict("archive QuickXorHash as stated", got == a.Checksum, blobName,
			fmt.Sprintf("%s hashes to %s; %s states %q", blobName, got, name, a.Checksum)))
		var big, compressed []string
		for _, f := range a.Files {
			if n, ok := fileSizes[f.FileValue]; ok && encryptedSize(n) >= MaxArchivedFile {
				big = append(big, fmt.Sprintf("%s (%d bytes, %d encrypted)", f.FileValue, n, encryptedSize(n)))
			}
			if isCompressed(f.FileValue) {
				compressed = append(compressed, f.FileValue)
			}
		}
		out = append(out, verdict("archived files under 100 KB after encryption", len(big) == 0, blobName, blobName+": "+orAll(big, len(a.Files))))
		out = append(out, verdict("archived files not compressed individually", len(compressed) == 0, blobName, blobName+": "+orAll(compressed, len(a.Files))))
	}
	return out, nil
}

func verdict(rule string, ok bool, blob, detail string) Finding {
	if ok {
		return Finding{Rule: rule, Status: Pass, Detail: detail}
	}
	return Finding{Rule: rule, Status: Fail, Blob: blob, Detail: detail}
}

func orAll(bad []string, n int) string {
	if len(bad) == 0 {
		return fmt.Sprintf("%d files, all within the rule", n)
	}
	return strings.Join(bad, ", ")
}

// encryptedSize is a file's size after AES-256-CBC with PKCS#7 padding, the Migration API's
// encryption: always a whole number of 16-byte blocks, at least one more byte.
func encryptedSize(n int64) int64 { return (n/16 + 1) * 16 }

// isCompressed says whether a file name is a compressed format (an archived file must not be).
func isCompressed(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".zip", ".gz", ".tgz", ".7z", ".rar", ".bz2", ".xz", ".cab", ".zst":
		return true
	}
	return false
}

// manifestFileSizes reads Manifest.xml's File elements (FileValue to FileSize) with the
// streaming manifest parser.
func manifestFileSizes(ctx context.Context, manifests *container.Client, prefix string) (map[string]int64, error) {
	out := map[string]int64{}
	resp, err := manifests.NewBlobClient(path.Join(prefix, "Manifest.xml")).DownloadStream(ctx, nil)
	if err != nil {
		if isNotFound(err) {
			return out, nil
		}
		return nil, sas.RedactError(err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only: a failed close loses nothing
	p := manifest.NewParser(resp.Body, manifest.Options{SourceFile: "Manifest.xml"})
	for {
		rec, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("Manifest.xml: %w", err)
		}
		if f := rec.GetFile(); f != nil && f.GetFileValue() != "" {
			out[f.GetFileValue()] = f.GetFileSize()
		}
	}
}

var errNotFound = errors.New("blob not found")

func isNotFound(err error) bool { return bloberror.HasCode(err, bloberror.BlobNotFound) }

// hashBlob streams a blob through QuickXorHash; it returns the digest, the blob's first bytes
// and its length.
func hashBlob(ctx context.Context, c *container.Client, name string) (string, []byte, int64, error) {
	resp, err := c.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return "", nil, 0, fmt.Errorf("download %s: %w", name, sas.RedactError(err))
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	var head bytes.Buffer
	sum, n, err := quickxorhash.ReadBase64(io.TeeReader(resp.Body, &limitedWriter{w: &head, n: 4}))
	if err != nil {
		return "", nil, n, fmt.Errorf("download %s: %w", name, err)
	}
	return sum, head.Bytes(), n, nil
}

// limitedWriter keeps the first n bytes written and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if k := min(l.n, len(p)); k > 0 {
		l.n -= k
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// download reads a blob, at most limit bytes.
func download(ctx context.Context, c *container.Client, name string, limit int64) ([]byte, error) {
	resp, err := c.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		if isNotFound(err) {
			return nil, errNotFound
		}
		return nil, fmt.Errorf("download %s: %w", name, sas.RedactError(err))
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", name, err)
	}
	return data, nil
}
