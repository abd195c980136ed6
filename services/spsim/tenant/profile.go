package tenant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Profile describes a synthetic tenant compactly; New expands it lazily. It is JSON-serialisable so
// tests and the CLI can define their own.
type Profile struct {
	Seed int64
	// Epoch is the simulated clock's start; every generated timestamp lies before it. Zero means
	// DefaultEpoch.
	Epoch time.Time `json:",omitzero"`
	// OddNameEvery makes about one file name in OddNameEvery contain characters the export must
	// encode (XML-invalid characters, XML/URL specials, non-ASCII). Zero means 2,000; negative, never.
	OddNameEvery int `json:",omitempty"`
	Sites        []SiteSpec
}

// SiteSpec is one site collection.
type SiteSpec struct {
	URL    string // server-relative, e.g. "/sites/hr"
	Title  string
	Users  int
	Groups int // site groups; the first three are the standard Owners, Visitors and Members
	// Webs holds the root web (Path "") and any subwebs ("platform", "platform/tools").
	Webs []WebSpec
}

// WebSpec is a web of a site.
type WebSpec struct {
	Path  string // relative to the site URL; "" is the root web
	Title string
	Lists []ListSpec
}

// Template values of ListSpec.Template (SharePoint's BaseTemplate).
const (
	TemplateGenericList     = 100
	TemplateDocumentLibrary = 101
)

// ListSpec is a document library or a generic list.
type ListSpec struct {
	Title string
	// URL is web-relative ("Shared Documents", "Lists/Tasks"); empty means the Title for a library
	// and "Lists/<Title>" for a list.
	URL      string `json:",omitempty"`
	Template int    // TemplateDocumentLibrary or TemplateGenericList
	Hidden   bool   `json:",omitempty"`
	// Root is the folder tree; its Name and Repeat are ignored. In a generic list the "files" of a
	// folder are its list items.
	Root FolderSpec
	// Items adds that many items at the root of a generic list (a shorthand for Root.Files).
	Items    int           `json:",omitempty"`
	Fields   []FieldSpec   `json:",omitempty"` // custom columns of every item (and every file's item)
	Versions VersionPolicy `json:",omitzero"`
	// UniqueEvery makes every Nth item (by list item id: folders, files, list items) break
	// permission inheritance; zero means none. The list itself always has unique permissions.
	UniqueEvery int `json:",omitempty"`
}

// FolderSpec describes a folder tree compactly: Files files directly inside, then the subfolders.
// Repeat > 0 makes Repeat siblings of the same shape named "<Name>-0001", "<Name>-0002", ...
type FolderSpec struct {
	Name    string       `json:",omitempty"`
	Files   int          `json:",omitempty"`
	Folders []FolderSpec `json:",omitempty"`
	Repeat  int          `json:",omitempty"`
}

// VersionPolicy shapes version histories.
type VersionPolicy struct {
	MaxVersions int // versions per file or item, current included (1 = no history); 0 means 1
	// MinorPercent of the files use minor (draft) versions: 0.1, 1.0, 1.1, 2.0, ...
	MinorPercent int `json:",omitempty"`
}

// Field types of FieldSpec.Type.
const (
	FieldText     = "Text"
	FieldNumber   = "Number"
	FieldDateTime = "DateTime"
	FieldUser     = "User"
	FieldBoolean  = "Boolean"
	FieldNote     = "Note"
	FieldChoice   = "Choice"
)

// FieldSpec is a column of a list.
type FieldSpec struct {
	Name    string
	Type    string
	Choices []string `json:",omitempty"` // FieldChoice only
}

// DefaultEpoch is the default start of the simulated clock, fixed so runs are reproducible.
var DefaultEpoch = time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)

// ParseProfile decodes a JSON profile, rejecting unknown fields, and validates it.
func ParseProfile(data []byte) (Profile, error) {
	var p Profile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Profile{}, fmt.Errorf("decode profile: %w", err)
	}
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// LoadProfile reads and validates a JSON profile file.
func LoadProfile(path string) (Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Profile{}, fmt.Errorf("load profile: %w", err)
	}
	p, err := ParseProfile(data)
	if err != nil {
		return Profile{}, fmt.Errorf("load profile %s: %w", path, err)
	}
	return p, nil
}

// ErrBadProfile is wrapped by every profile validation error.
var ErrBadProfile = errors.New("invalid tenant profile")

// Validate checks the profile's shape: URLs, unique names, known templates and field types.
func (p Profile) Validate() error {
	if len(p.Sites) == 0 {
		return fmt.Errorf("%w: no sites", ErrBadProfile)
	}
	seen := map[string]bool{}
	for _, s := range p.Sites {
		if err := s.validate(seen); err != nil {
			return err
		}
	}
	return nil
}

func (s SiteSpec) validate(seenURL map[string]bool) error {
	u := strings.ToLower(s.URL)
	if !strings.HasPrefix(s.URL, "/") || len(s.URL) < 2 || strings.HasSuffix(s.URL, "/") {
		return fmt.Errorf("%w: site URL %q must be server-relative like /sites/x", ErrBadProfile, s.URL)
	}
	if s.Users < 1 || s.Groups < 3 {
		return fmt.Errorf("%w: site %s needs at least 1 user and 3 groups", ErrBadProfile, s.URL)
	}
	hasRoot := false
	for _, w := range s.Webs {
		wu := u
		if w.Path != "" {
			if strings.HasPrefix(w.Path, "/") || strings.HasSuffix(w.Path, "/") {
				return fmt.Errorf("%w: web path %q of %s", ErrBadProfile, w.Path, s.URL)
			}
			wu += "/" + strings.ToLower(w.Path)
		} else {
			hasRoot = true
		}
		if seenURL[wu] {
			return fmt.Errorf("%w: duplicate web or site URL %s", ErrBadProfile, wu)
		}
		seenURL[wu] = true
		if err := validateLists(wu, w.Lists); err != nil {
			return err
		}
	}
	if !hasRoot {
		return fmt.Errorf("%w: site %s has no root web (Path \"\")", ErrBadProfile, s.URL)
	}
	return nil
}

func validateLists(webURL string, lists []ListSpec) error {
	urls := map[string]bool{}
	for _, l := range lists {
		if l.Title == "" {
			return fmt.Errorf("%w: list without a title in %s", ErrBadProfile, webURL)
		}
		if l.Template != TemplateDocumentLibrary && l.Template != TemplateGenericList {
			return fmt.Errorf("%w: list %s in %s: template %d", ErrBadProfile, l.Title, webURL, l.Template)
		}
		u := strings.ToLower(l.webRelURL())
		if urls[u] || strings.HasPrefix(u, "/") || strings.HasSuffix(u, "/") {
			return fmt.Errorf("%w: list URL %q in %s is empty, duplicate or not web-relative", ErrBadProfile, u, webURL)
		}
		urls[u] = true
		if l.Items < 0 || l.UniqueEvery < 0 || l.Versions.MaxVersions < 0 || l.Versions.MinorPercent < 0 || l.Versions.MinorPercent > 100 {
			return fmt.Errorf("%w: list %s in %s: negative count or percent over 100", ErrBadProfile, l.Title, webURL)
		}
		for _, f := range l.Fields {
			if err := f.validate(); err != nil {
				return fmt.Errorf("list %s in %s: %w", l.Title, webURL, err)
			}
		}
		if err := validateFolder(l.Root, true); err != nil {
			return fmt.Errorf("list %s in %s: %w", l.Title, webURL, err)
		}
	}
	return nil
}

func (f FieldSpec) validate() error {
	switch f.Type {
	case FieldText, FieldNumber, FieldDateTime, FieldUser, FieldBoolean, FieldNote:
	case FieldChoice:
		if len(f.Choices) == 0 {
			return fmt.Errorf("%w: choice field %q has no choices", ErrBadProfile, f.Name)
		}
	default:
		return fmt.Errorf("%w: field %q has unknown type %q", ErrBadProfile, f.Name, f.Type)
	}
	if f.Name == "" {
		return fmt.Errorf("%w: field without a name", ErrBadProfile)
	}
	return nil
}

// invalidNameChars are rejected in folder names, as SharePoint Online does.
const invalidNameChars = "\"*:<>?/\\|"

func validateFolder(f FolderSpec, root bool) error {
	if f.Files < 0 || f.Repeat < 0 {
		return fmt.Errorf("%w: folder %q: negative count", ErrBadProfile, f.Name)
	}
	if !root && (f.Name == "" || strings.ContainsAny(f.Name, invalidNameChars) || strings.TrimSpace(f.Name) != f.Name) {
		return fmt.Errorf("%w: folder name %q", ErrBadProfile, f.Name)
	}
	names := map[string]bool{}
	for _, c := range f.Folders {
		key := strings.ToLower(c.Name)
		if c.Repeat > 0 {
			key += "-#"
		}
		if names[key] {
			return fmt.Errorf("%w: duplicate subfolder %q in %q", ErrBadProfile, c.Name, f.Name)
		}
		names[key] = true
		if err := validateFolder(c, false); err != nil {
			return err
		}
	}
	return nil
}

func (l ListSpec) webRelURL() string {
	switch {
	case l.URL != "":
		return l.URL
	case l.Template == TemplateGenericList:
		return "Lists/" + l.Title
	default:
		return l.Title
	}
}

// standardFields is a schema with one column of every supported type.
func standardFields() []FieldSpec {
	return []FieldSpec{
		{Name: "Status", Type: FieldChoice, Choices: []string{"Not Started", "In Progress", "Completed", "Deferred"}},
		{Name: "Priority", Type: FieldNumber},
		{Name: "DueDate", Type: FieldDateTime},
		{Name: "AssignedTo", Type: FieldUser},
		{Name: "Approved", Type: FieldBoolean},
		{Name: "Description", Type: FieldNote},
		{Name: "Category", Type: FieldText},
	}
}

// DefaultProfile is the simulator's standard tenant: about 1.3 million items over three sites,
// with every planner tier present both at SharePoint's thresholds (10K/1M items) and at the
// lowered ones tests use (2K/50K): over a thousand tiny folders (engineering's library alone holds
// 60K items in folders of 61), mid-size folders of 10K-60K items, and
// /sites/archive/Records/2019 with 1,080,005 files in twelve subfolders of 90K (each holding a
// 7.5K subfolder) plus five files at its top.
func DefaultProfile() Profile {
	fields := standardFields()
	return Profile{
		Seed: 20260302,
		Sites: []SiteSpec{
			{
				URL: "/sites/hr", Title: "Human Resources", Users: 120, Groups: 6,
				Webs: []WebSpec{{
					Title: "Human Resources",
					Lists: []ListSpec{
						{
							Title: "Documents", URL: "Shared Documents", Template: TemplateDocumentLibrary,
							Versions: VersionPolicy{MaxVersions: 5, MinorPercent: 20}, UniqueEvery: 97,
							Root: FolderSpec{Files: 35, Folders: []FolderSpec{
								{Name: "Employees", Repeat: 300, Files: 30, Folders: []FolderSpec{{Name: "Reviews", Files: 8}}},
								{Name: "Policies", Files: 180},
								{Name: "Q&A – Ü", Files: 12},
								{Name: "Recruiting", Files: 4000, Folders: []FolderSpec{{Name: "Candidates", Repeat: 40, Files: 150}}},
							}},
						},
						{
							Title: "Onboarding Tasks", Template: TemplateGenericList, Items: 3000, Fields: fields,
							Versions: VersionPolicy{MaxVersions: 3}, UniqueEvery: 250,
						},
						{Title: "TaxonomyHiddenList", Template: TemplateGenericList, Hidden: true, Items: 25},
					},
				}},
			},
			{
				URL: "/sites/engineering", Title: "Engineering", Users: 400, Groups: 10,
				Webs: []WebSpec{
					{
						Title: "Engineering",
						Lists: []ListSpec{
							{
								Title: "Documents", URL: "Shared Documents", Template: TemplateDocumentLibrary,
								Versions: VersionPolicy{MaxVersions: 8, MinorPercent: 30}, UniqueEvery: 501,
								Root: FolderSpec{Files: 60, Folders: []FolderSpec{
									{Name: "Specs", Files: 25000},
									{Name: "Sprints", Repeat: 1000, Files: 60},
									{Name: "Releases", Files: 300, Folders: []FolderSpec{{Name: "Build", Repeat: 2, Files: 18000}}},
								}},
							},
							{Title: "Issues", Template: TemplateGenericList, Items: 12000, Fields: fields, Versions: VersionPolicy{MaxVersions: 4}, UniqueEvery: 1000},
						},
					},
					{
						Path: "platform", Title: "Platform",
						Lists: []ListSpec{
							{
								Title: "Design Docs", Template: TemplateDocumentLibrary,
								Versions: VersionPolicy{MaxVersions: 12, MinorPercent: 50}, UniqueEvery: 333,
								Root: FolderSpec{Files: 20, Folders: []FolderSpec{
									{Name: "Architecture", Files: 12000},
									{Name: "RFCs", Repeat: 60, Files: 25},
								}},
							},
							{Title: "Builds", Template: TemplateGenericList, Items: 5000, Fields: fields[:4]},
						},
					},
				},
			},
			{
				URL: "/sites/archive", Title: "Archive", Users: 40, Groups: 4,
				Webs: []WebSpec{{
					Title: "Archive",
					Lists: []ListSpec{
						{
							Title: "Records", Template: TemplateDocumentLibrary,
							Versions: VersionPolicy{MaxVersions: 2}, UniqueEvery: 5003,
							Root: FolderSpec{Folders: []FolderSpec{
								{Name: "2019", Files: 5, Folders: []FolderSpec{
									{Name: "Month", Repeat: 12, Files: 82500, Folders: []FolderSpec{{Name: "Scans", Files: 7500}}},
								}},
								{Name: "2020", Files: 40000},
								{Name: "Index", Files: 150},
							}},
						},
						{Title: "Retention Schedule", Template: TemplateGenericList, Items: 500, Fields: fields[4:]},
					},
				}},
			},
		},
	}
}

// SmallProfile is a tenant of a few thousand items with every feature present (subweb, nested and
// repeated folders, versions with minor versions, unique permissions, a list with every field type,
// odd names), for fast tests.
func SmallProfile() Profile {
	return Profile{
		Seed:         42,
		OddNameEvery: 100,
		Sites: []SiteSpec{{
			URL: "/sites/small", Title: "Small", Users: 12, Groups: 4,
			Webs: []WebSpec{
				{
					Title: "Small",
					Lists: []ListSpec{
						{
							Title: "Documents", URL: "Shared Documents", Template: TemplateDocumentLibrary,
							Versions: VersionPolicy{MaxVersions: 4, MinorPercent: 30}, UniqueEvery: 40,
							Root: FolderSpec{Files: 25, Folders: []FolderSpec{
								{Name: "Team", Repeat: 12, Files: 30, Folders: []FolderSpec{{Name: "Archive", Files: 7, Folders: []FolderSpec{{Name: "Old", Files: 3}}}}},
								{Name: "Big", Files: 1200},
								{Name: "Empty"},
							}},
						},
						{Title: "Tasks", Template: TemplateGenericList, Items: 300, Fields: standardFields(), Versions: VersionPolicy{MaxVersions: 3}, UniqueEvery: 25},
					},
				},
				{
					Path: "team", Title: "Team",
					Lists: []ListSpec{{
						Title: "Notes", Template: TemplateDocumentLibrary, Versions: VersionPolicy{MaxVersions: 2},
						Root: FolderSpec{Files: 40, Folders: []FolderSpec{{Name: "Drafts", Files: 60}}},
					}},
				},
			},
		}},
	}
}
