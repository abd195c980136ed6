package export

import (
	"net/url"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// The package files other than Manifest*.xml. Each build function appends the document after the
// XML declaration that Close has already written into w.buf.

// Values of SystemData/SchemaVersion, as in the SharePoint Online sample (migration-manifest.md).
const (
	schemaVersion   = "15.0.0.0"
	schemaBuild     = "16.0.3111.1200"
	databaseVersion = "11552"
	siteVersion     = "15"
)

// buildEmpty writes a root element with no content: LookupListMap, Requirements and ViewFormsList
// hold nothing for the metadata the simulator exports.
func (w *Writer) buildEmpty(root, ns string) {
	w.rootOpen(root, ns)
	w.endEmpty()
}

func (w *Writer) rootOpen(root, ns string) {
	w.element("", root)
	w.attrConst("xmlns", ns)
}

// buildUserGroup writes UserGroup.xml (root UserGroupMap), shaped like the AMR sample in
// export-amr-api-permission-guide.
func (w *Writer) buildUserGroup(users []tenant.User, groups []tenant.Group) {
	const root = "UserGroupMap"
	w.rootOpen(root, "urn:deployment-usergroupmap-schema")
	w.endOpen()
	writeEntries(w, ind1, "Users", "User", users, func(u *tenant.User) {
		w.attrInt("Id", int64(u.ID))
		w.attrEnc("Name", u.Name)
		w.attrEnc("Login", u.Login)
		w.attrEnc("Email", u.Email)
		w.attrBool("IsDomainGroup", false)
		w.attrBool("IsSiteAdmin", u.IsSiteAdmin)
		w.attr("SystemId", u.SystemID)
		w.attrBool("IsDeleted", u.IsDeleted)
		w.attrInt("Flags", int64(u.Flags))
	})
	if w.emptyOrOpen(ind1, "Groups", len(groups)) {
		for i := range groups {
			g := &groups[i]
			w.open(ind2, "Group", func() {
				w.attrInt("Id", int64(g.ID))
				w.attrEnc("Name", g.Name)
				if g.Description != "" {
					w.attrEnc("Description", g.Description)
				}
				w.attrInt("Owner", int64(g.Owner))
				w.attrBool("OwnerIsUser", g.OwnerIsUser)
			})
			if !w.endChildren(len(g.Members)) {
				continue
			}
			for _, m := range g.Members {
				w.element(ind3, "Member")
				w.attrInt("UserId", int64(m))
				w.endEmpty()
			}
			w.closeTag(ind2, "Group")
		}
		w.closeTag(ind1, "Groups")
	}
	w.closeTag("", root)
}

// includeSecurity maps the read options to SPIncludeSecurity: IncludeSecurity exports every user
// and group (All), IncludePermission only the role assignments and their principals (WssOnly).
func includeSecurity(o tenant.ReadOptions) string {
	switch {
	case o.IncludeSecurity:
		return "All"
	case o.IncludePermission:
		return "WssOnly"
	}
	return "None"
}

func (w *Writer) buildExportSettings() {
	const root = "ExportSettings"
	ro := w.opts.ReadOptions
	versions, method := "LastMajor", "ExportAll"
	if ro.IncludeVersions {
		versions = "All"
	}
	if ro.StartChangeToken != "" {
		method = "ExportChanges"
	}
	w.open("", root, func() {
		w.attrConst("xmlns", "urn:deployment-exportsettings-schema")
		w.attrEnc("SiteUrl", w.opts.SiteURL)
		w.attrConst("IncludeSecurity", includeSecurity(ro))
		w.attrConst("IncludeVersions", versions)
		w.attrConst("ExportMethod", method)
		if w.opts.ChangeToken != "" {
			w.attr("ExportChangeToken", w.opts.ChangeToken)
		}
	})
	if !w.endChildren(len(w.opts.Targets)) {
		return
	}
	writeEntries(w, ind1, "ExportObjects", "DeploymentObject", w.opts.Targets, func(t *Root) {
		w.targetIdentity(t)
		w.attrEnc("Url", serverRelative(t.URL))
	})
	w.closeTag("", root)
}

// targetIdentity writes the attributes DeploymentObject and RootObject share.
func (w *Writer) targetIdentity(t *Root) {
	w.attr("Id", t.ID)
	w.attr("Type", t.Type)
	w.attrNonEmpty("ParentId", t.ParentID)
}

func (w *Writer) buildRootObjectMap() {
	const root = "RootObjects"
	w.rootOpen(root, "urn:deployment-rootobjectmap-schema")
	if !w.endChildren(len(w.opts.Targets)) {
		return
	}
	for i := range w.opts.Targets {
		t := &w.opts.Targets[i]
		w.open(ind1, "RootObject", func() {
			w.targetIdentity(t)
			w.attrEnc("WebUrl", serverRelative(t.WebURL))
			w.attrEnc("Url", serverRelative(t.URL))
			w.attrBool("IsDependency", false)
		})
		w.endEmpty()
	}
	w.closeTag("", root)
}

// buildSystemData writes SystemData.xml: every manifest part, and the webs of the job's targets as
// system objects (objects the package refers to but does not contain).
func (w *Writer) buildSystemData() {
	const root = "SystemData"
	w.rootOpen(root, "urn:deployment-systemdata-schema")
	w.endOpen()
	w.element(ind1, "SchemaVersion")
	w.attrConst("Version", schemaVersion)
	w.attrConst("Build", schemaBuild)
	w.attrConst("DatabaseVersion", databaseVersion)
	w.attrConst("SiteVersion", siteVersion)
	w.endEmpty()
	w.element(ind1, "ManifestFiles")
	w.endOpen()
	for _, m := range w.manifests {
		w.element(ind2, "ManifestFile")
		w.attrConst("Name", m)
		w.endEmpty()
	}
	w.closeTag(ind1, "ManifestFiles")
	webs := make(map[string]bool)
	n := 0
	for _, t := range w.opts.Targets {
		if t.WebID != "" && !webs[t.WebID] {
			webs[t.WebID] = true
			n++
		}
	}
	if w.emptyOrOpen(ind1, "SystemObjects", n) {
		clear(webs)
		for i := range w.opts.Targets {
			t := &w.opts.Targets[i]
			if t.WebID == "" || webs[t.WebID] {
				continue
			}
			webs[t.WebID] = true
			w.open(ind2, "SystemObject", func() {
				w.attr("Id", t.WebID)
				w.attrConst("Type", "Web")
				w.attrEnc("Url", serverRelative(t.WebURL))
			})
			w.endEmpty()
		}
		w.closeTag(ind1, "SystemObjects")
	}
	w.element(ind1, "RootWebOnlyLists")
	w.endEmpty()
	w.closeTag("", root)
}

// serverRelative reduces an absolute URL to its path; a server-relative URL is returned unchanged.
func serverRelative(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return s
	}
	if u.Path == "" {
		return "/"
	}
	return u.Path
}
