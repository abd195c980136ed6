// Package manifestgen writes synthetic, deterministic AMR Manifest.xml files
// shaped like real exports (attribute-heavy SPFile, SPListItem and SPFolder
// objects with versions, fields, properties and role assignments), for
// benchmarks and differential tests of the manifest parser.
package manifestgen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// Config says what to write.
type Config struct {
	// Seed makes the output reproducible.
	Seed uint64
	// TargetBytes is the approximate size; writing stops at the first object
	// boundary at or past it.
	TargetBytes int64
	// Tricky adds rare content that exercises the parser's slow paths: entity
	// references, non-ASCII text, EncodedAttributes, comments and CDATA.
	Tricky bool
}

// Stats describes what was written.
type Stats struct {
	Bytes   int64
	Records int // records the manifest parser yields for this file
}

type gen struct {
	w       *bufio.Writer
	cw      *countWriter
	rng     *rand.Rand
	cfg     Config
	web     string
	webURL  string
	list    string
	scope   string
	folder  string
	dir     string
	records int
	seq     int
	t0      time.Time
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// Write writes one Manifest.xml to w.
func Write(w io.Writer, cfg Config) (Stats, error) {
	cw := &countWriter{w: w}
	g := &gen{cw: cw, w: bufio.NewWriterSize(cw, 64<<10), rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), cfg: cfg}
	g.t0 = time.Date(2023, 5, 11, 5, 19, 48, 0, time.UTC)
	g.web = g.guid()
	g.webURL = "/sites/finance"
	g.list = g.guid()
	g.scope = g.guid()
	g.printf("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<SPObjects xmlns=\"urn:deployment-manifest-schema\">\n")
	for g.size() < cfg.TargetBytes {
		if g.seq%40 == 0 {
			g.folderObjects()
		}
		g.fileObject()
		g.listItemObject()
		if g.seq%15 == 0 {
			g.roleAssignments()
		}
		if cfg.Tricky && g.seq%7 == 3 {
			g.printf("  <!-- objects of %s -->\n  <![CDATA[ <not-a-tag> & ]]>\n  \u2026\n", g.dir)
		}
		g.seq++
	}
	g.printf("</SPObjects>\n")
	if err := g.w.Flush(); err != nil {
		return Stats{}, fmt.Errorf("manifestgen: %w", err)
	}
	return Stats{Bytes: cw.n, Records: g.records}, nil
}

func (g *gen) size() int64 { return g.cw.n + int64(g.w.Buffered()) }

func (g *gen) printf(format string, args ...any) {
	fmt.Fprintf(g.w, format, args...) // a write error is reported by Flush
}

func (g *gen) guid() string {
	a, b := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, a>>16&0xffff, 0x4000|a&0x0fff, 0x8000|b>>48&0x3fff, b&0xffffffffffff)
}

func (g *gen) when(i int) string {
	return g.t0.Add(time.Duration(g.seq*3600+i*61) * time.Second).Format("2006-01-02T15:04:05")
}

// text returns a display name; with Tricky, some carry entities and non-ASCII.
func (g *gen) text(base string, i int) string {
	if g.cfg.Tricky {
		switch g.rng.IntN(12) {
		case 0:
			return base + " R&amp;D &lt;draft&gt; &quot;" + strconv.Itoa(i) + "&quot;"
		case 1:
			return base + " Übersicht – 報告書 " + strconv.Itoa(i)
		case 2:
			return base + " &#233;t&#xE9; &apos;" + strconv.Itoa(i) + "&apos;"
		}
	}
	return base + " " + strconv.Itoa(i)
}

func (g *gen) folderObjects() {
	id, item := g.guid(), g.guid()
	g.folder = id
	g.dir = "Shared Documents/Folder " + strconv.Itoa(g.seq/40)
	g.printf(`  <SPObject Id="%s" ObjectType="SPFolder" ParentId="%s" ParentWebId="%s" ParentWebUrl="%s" Url="%s/%s">
    <Folder Id="%s" Url="%s" Name="Folder %d" ParentFolderId="%s" ParentWebId="%s" ParentWebUrl="%s" ContainingDocumentLibrary="%s" ListItemIntId="%d" TimeCreated="%s" TimeLastModified="%s" Author="%d" ModifiedBy="%d" SortBehavior="1" ProgId="">
      <Properties>
        <Property Name="vti_foldersubfolderitemcount" Type="Integer" Value="0" />
        <Property Name="vti_folderitemcount" Type="Integer" Value="40" />
      </Properties>
    </Folder>
  </SPObject>
  <SPObject Id="%s" ObjectType="SPListItem" ParentId="%s" ParentWebId="%s" ParentWebUrl="%s" Url="%s/%s">
    <ListItem FileUrl="%s" DocType="Folder" ParentFolderId="%s" Order="%d00" Id="%s" ParentWebId="%s" ParentListId="%s" Name="Folder %d" DirName="%s/Shared Documents" IntId="%d" DocId="%s" Version="1.0" Author="%d" ModifiedBy="%d" TimeLastModified="%s" TimeCreated="%s" ModerationStatus="Approved" ContentTypeId="0x0120">
      <Fields>
        <Field Name="SMTotalFileCount" FieldId="%s" Type="Lookup" Value="40" />
        <Field Name="ContentType" FieldId="%s" Type="Computed" Value="Folder" />
      </Fields>
    </ListItem>
  </SPObject>
`, id, g.list, g.web, g.webURL, g.webURL, g.dir,
		id, g.dir, g.seq/40, g.list, g.web, g.webURL, g.list, g.seq+1, g.when(0), g.when(1), 1+g.seq%17, 1+g.seq%13,
		item, g.list, g.web, g.webURL, g.webURL, g.dir,
		g.dir, g.list, g.seq+1, item, g.web, g.list, g.seq/40, g.webURL, g.seq+1, id, 1+g.seq%17, 1+g.seq%13, g.when(1), g.when(0),
		g.guid(), g.guid())
	g.records += 2
}

func (g *gen) fileObject() {
	id := g.guid()
	name := "Report " + strconv.Itoa(g.seq) + ".docx"
	versions := 1 + g.rng.IntN(4)
	enc := g.cfg.Tricky && g.seq%50 == 7
	fileURL, webURL, version := g.dir+"/"+name, g.webURL, strconv.Itoa(versions)+".0"
	encAttr := ""
	if enc { // as AMR writes it: every listed attribute escaped _xHHHH_
		fileURL = "Shared_x0020_Documents_x002F_" + strconv.Itoa(g.seq) + "_x002F_" + name
		webURL = "_x002F_sites_x002F_finance"
		version = "_x00" + strconv.Itoa(30+versions) + "_.0"
		encAttr = ` EncodedAttributes="Url,ParentWebUrl,Version"`
	}
	g.printf(`  <SPObject Id="%s" ObjectType="SPFile" ParentId="%s" ParentWebId="%s" ParentWebUrl="%s" Url="%s/%s">
    <File Url="%s" Id="%s" ParentWebId="%s" ParentWebUrl="%s" Name="%s" ListItemIntId="%d" ListId="%s" ParentId="%s" ScopeId="%s" TimeCreated="%s" TimeLastModified="%s" Version="%s" FileSize="%d" Level="1" Author="%d" ModifiedBy="%d" NoExecute="true" ContentVersion="%d" CheckinComment="%s"%s>
      <Properties>
        <Property Name="vti_title" Type="String" Value="%s" />
        <Property Name="vti_author" Type="String" Value="i:0#.f|membership|user%d@contoso.com" />
        <Property Name="ContentTypeId" Type="String" Value="0x010100A1B2C3D4E5F60718293A4B5C6D7E8F90" />
      </Properties>
      <Versions>
`, id, g.folder, g.web, g.webURL, g.webURL, g.dir+"/"+name,
		fileURL, id, g.web, webURL, name, g.seq+2, g.list, g.folder, g.scope, g.when(0), g.when(versions), version, 1000+g.rng.IntN(5<<20), 1+g.seq%17, 1+g.seq%13, versions*2+1, g.text("Checked in", g.seq), encAttr,
		g.text("Quarterly report", g.seq), g.seq%50)
	for v := 1; v < versions; v++ {
		g.printf(`        <File Url="%s" Id="%s" Version="%d.0" FileSize="%d" TimeCreated="%s" TimeLastModified="%s" Author="%d" ModifiedBy="%d" CheckinComment="%s" Level="1" />
`, "_vti_history/"+strconv.Itoa(v*512)+"/"+g.dir+"/"+name, g.guid(), v, 1000+g.rng.IntN(5<<20), g.when(0), g.when(v), 1+g.seq%17, 1+(g.seq+v)%13, g.text("Version", v))
	}
	g.printf("      </Versions>\n    </File>\n  </SPObject>\n")
	g.records++
}

func (g *gen) listItemObject() {
	id := g.guid()
	name := "Report " + strconv.Itoa(g.seq) + ".docx"
	versions := 1 + g.rng.IntN(3)
	g.printf(`  <SPObject Id="%s" ObjectType="SPListItem" ParentId="%s" ParentWebId="%s" ParentWebUrl="%s" Url="%s/%s">
    <ListItem FileUrl="%s" DocType="File" ParentFolderId="%s" Order="%d00" Id="%s" ParentWebId="%s" ParentListId="%s" Name="%s" DirName="%s" IntId="%d" DocId="%s" Version="%d.0" Author="%d" ModifiedBy="%d" TimeLastModified="%s" TimeCreated="%s" ModerationStatus="Approved" ContentTypeId="0x010100A1B2C3D4E5F60718293A4B5C6D7E8F90" ThreadIndex="0x01D9">
      <Fields>
`, id, g.list, g.web, g.webURL, g.webURL, g.dir+"/"+name,
		g.dir+"/"+name, g.folder, g.seq+2, id, g.web, g.list, name, g.webURL[1:]+"/"+g.dir, g.seq+2, g.guid(), versions, 1+g.seq%17, 1+g.seq%13, g.when(versions), g.when(0))
	g.fields(8)
	g.printf("      </Fields>\n      <Versions>\n")
	for v := 1; v < versions; v++ {
		g.printf(`        <ListItem Version="%d.0" Id="%s" Author="%d" ModifiedBy="%d" TimeCreated="%s" TimeLastModified="%s" ModerationStatus="Approved">
          <Fields>
`, v, id, 1+g.seq%17, 1+(g.seq+v)%13, g.when(0), g.when(v))
		g.fields(4)
		g.printf("          </Fields>\n        </ListItem>\n")
	}
	g.printf("      </Versions>\n    </ListItem>\n  </SPObject>\n")
	g.records++
}

var fieldSpecs = []struct{ name, typ string }{
	{"Title", "Text"}, {"Department", "Choice"}, {"ProjectCode", "Text"}, {"Reviewed", "Boolean"},
	{"DueDate", "DateTime"}, {"Budget", "Currency"}, {"Owner", "User"}, {"Keywords", "Note"},
	{"Region", "Lookup"}, {"_ModerationComments", "Note"},
}

func (g *gen) fields(n int) {
	for i := 0; i < n; i++ {
		f := fieldSpecs[(g.seq+i)%len(fieldSpecs)]
		var v string
		switch f.typ {
		case "Boolean":
			v = strconv.Itoa(g.rng.IntN(2))
		case "DateTime":
			v = g.when(i) + "Z"
		case "Currency", "Lookup", "User":
			v = strconv.Itoa(g.rng.IntN(100000))
		default:
			v = g.text(f.name+" value", g.seq*10+i)
		}
		g.printf("          <Field Name=\"%s\" FieldId=\"%s\" Type=\"%s\" Value=\"%s\" />\n", f.name, g.guid(), f.typ, v)
	}
}

func (g *gen) roleAssignments() {
	g.printf("  <SPObject Id=\"%s\" ObjectType=\"DeploymentRoleAssignments\" ParentId=\"%s\" ParentWebId=\"%s\" ParentWebUrl=\"%s\">\n    <RoleAssignments>\n", g.guid(), g.web, g.web, g.webURL)
	n := 1 + g.rng.IntN(3)
	for r := 0; r < n; r++ {
		g.printf("      <RoleAssignment ScopeId=\"%s\" RoleDefWebId=\"%s\" RoleDefWebUrl=\"\" ObjectId=\"%s\" ObjectType=\"2\" ObjectUrl=\"%s/Report %d.docx\" AnonymousPermMask=\"0\">\n", g.guid(), g.web, g.guid(), g.dir, g.seq)
		for a, m := 0, 3+g.rng.IntN(10); a < m; a++ {
			g.printf("        <Assignment RoleId=\"%d\" PrincipalId=\"%d\" />\n", 1073741825+g.rng.IntN(5), 3+g.rng.IntN(40))
		}
		g.printf("      </RoleAssignment>\n")
		g.records++
	}
	g.printf("    </RoleAssignments>\n  </SPObject>\n")
}
