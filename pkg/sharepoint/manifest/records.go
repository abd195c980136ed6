package manifest

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Record builders. Each one receives the start tag of its element, converts the
// attributes (before reading on: token slices are then invalidated), and
// consumes the element up to its end tag.

func (p *Parser) spObjectHeader(tok *token) (*amrpipev1.SPObjectHeader, error) {
	h := &amrpipev1.SPObjectHeader{}
	err := p.each(tok, &h.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			h.Id = p.v(a)
		case "ObjectType":
			h.ObjectType = p.v(a)
		case "ParentId":
			h.ParentId = p.v(a)
		case "Name":
			h.Name = p.v(a)
		case "IsDeleted":
			h.IsDeleted = p.boolv(a)
		case "IsSiteRename":
			h.IsSiteRename = p.boolv(a)
		case "ParentWebId":
			h.ParentWebId = p.v(a)
		case "ParentWebUrl":
			h.ParentWebUrl = p.v(a)
		case "ContentTypeId":
			h.ContentTypeId = p.v(a)
		case "Url":
			h.ServerRelativeUrl = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return h, p.done()
}

// object builds the record of an SPObject's child element.
func (p *Parser) object(tok *token) (*amrpipev1.Record, error) {
	objectType := p.hdr.GetObjectType()
	if objectType == "" {
		objectType = p.intern(tok.local)
	}
	rec := p.newRecord(p.hdr.GetId(), objectType)
	var id string
	var err error
	switch string(tok.local) {
	case "File":
		var f *amrpipev1.File
		f, err = p.file(tok)
		id, rec.Body = f.GetId(), &amrpipev1.Record_File{File: f}
	case "Folder":
		var f *amrpipev1.Folder
		f, err = p.folder(tok)
		id, rec.Body = f.GetId(), &amrpipev1.Record_Folder{Folder: f}
	case "ListItem":
		var li *amrpipev1.ListItem
		li, err = p.listItem(tok)
		id, rec.Body = li.GetId(), &amrpipev1.Record_ListItem{ListItem: li}
	case "List", "DocumentLibrary":
		var l *amrpipev1.List
		l, err = p.list(tok)
		id, rec.Body = l.GetId(), &amrpipev1.Record_List{List: l}
	default:
		var g *amrpipev1.GenericObject
		g, err = p.generic(tok)
		id, rec.Body = g.GetExtra()["Id"], &amrpipev1.Record_GenericObject{GenericObject: g}
	}
	if err != nil {
		return nil, err
	}
	if rec.ObjectId == "" {
		rec.ObjectId = id
	}
	return rec, nil
}

func (p *Parser) intern(b []byte) string {
	if s, ok := p.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(p.names) < 4096 {
		p.names[s] = s
	}
	return s
}

func (p *Parser) file(tok *token) (*amrpipev1.File, error) {
	f := &amrpipev1.File{ServerRelativeUrl: p.hdr.GetServerRelativeUrl()}
	err := p.each(tok, &f.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			f.Id = p.v(a)
		case "Name":
			f.Name = p.v(a)
		case "Url":
			f.Url = p.v(a)
		case "ParentWebId":
			f.ParentWebId = p.v(a)
		case "ParentWebUrl":
			f.ParentWebUrl = p.v(a)
		case "ParentId":
			f.ParentId = p.v(a)
		case "ListId":
			f.ListId = p.v(a)
		case "ListItemIntId":
			f.ListItemIntId = p.int64v(a)
		case "ScopeId":
			f.ScopeId = p.v(a)
		case "Version":
			f.Version = p.v(a)
		case "FileSize":
			f.FileSize = p.int64v(a)
		case "Level":
			f.Level = p.int32v(a)
		case "CheckinComment":
			f.CheckinComment = p.v(a)
		case "IsGhosted":
			f.IsGhosted = p.boolv(a)
		case "SetupPath":
			f.SetupPath = p.v(a)
		case "SetupPathVersion":
			f.SetupPathVersion = p.int32v(a)
		case "SetupPathUser":
			f.SetupPathUser = p.v(a)
		case "FileValue":
			f.FileValue = p.v(a)
		case "InDocumentLibrary":
			f.InDocumentLibrary = p.boolv(a)
		case "Checksum":
			f.Checksum = p.v(a)
		case "FailureMessage":
			f.FailureMessage = p.v(a)
		case "NoExecute":
			f.NoExecute = p.boolv(a)
		case "ContentVersion":
			f.ContentVersion = p.v(a)
		default:
			return p.audit(a, &f.Author, &f.ModifiedBy, &f.TimeCreated, &f.TimeLastModified, &f.Extra)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	err = p.children(func(t *token) error {
		switch string(t.local) {
		case "Versions":
			m := p.fileVersions.mark()
			err := p.children(func(t *token) error {
				if string(t.local) != "File" {
					return p.skip()
				}
				v, err := p.fileVersion(t)
				p.fileVersions.add(v)
				return err
			})
			f.Versions = p.fileVersions.take(m)
			return err
		case "Properties":
			return p.properties(&f.Properties)
		}
		return p.skip()
	})
	return f, err
}

func (p *Parser) fileVersion(tok *token) (*amrpipev1.FileVersion, error) {
	v := &amrpipev1.FileVersion{}
	err := p.each(tok, &v.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			v.Id = p.v(a)
		case "Version":
			v.Version = p.v(a)
		case "Url":
			v.Url = p.v(a)
		case "FileSize":
			v.FileSize = p.int64v(a)
		case "CheckinComment":
			v.CheckinComment = p.v(a)
		case "Level":
			v.Level = p.int32v(a)
		case "FileValue":
			v.FileValue = p.v(a)
		case "Checksum":
			v.Checksum = p.v(a)
		case "Name":
			v.Name = p.v(a)
		case "ParentWebId":
			v.ParentWebId = p.v(a)
		case "ParentWebUrl":
			v.ParentWebUrl = p.v(a)
		case "ParentId":
			v.ParentId = p.v(a)
		case "ListId":
			v.ListId = p.v(a)
		case "ListItemIntId":
			v.ListItemIntId = p.int64v(a)
		default:
			return p.audit(a, &v.Author, &v.ModifiedBy, &v.TimeCreated, &v.TimeLastModified, &v.Extra)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	err = p.only("Properties", &v.Properties)
	return v, err
}

// properties reads a Properties dictionary (Property entries) or a Fields
// collection (Field entries) into fields.
func (p *Parser) properties(fields *[]*amrpipev1.Field) error {
	m := p.fields.mark()
	defer func() { *fields = p.fields.take(m) }()
	return p.children(func(t *token) error {
		switch string(t.local) {
		case "Property", "Field":
		default:
			return p.skip()
		}
		f := p.slabs.field()
		err := p.each(t, &f.Extra, func(a *kv) bool {
			switch string(p.key(a)) {
			case "Name":
				f.Name = p.v(a)
			case "Type":
				f.Type = p.v(a)
			case "Value":
				f.Value = p.v(a)
			case "Value2":
				f.Value2 = p.v(a)
			case "FieldId", "ID", "Id":
				f.FieldId = p.v(a)
			default:
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
		p.fields.add(f)
		return p.skip()
	})
}

func (p *Parser) folder(tok *token) (*amrpipev1.Folder, error) {
	f := &amrpipev1.Folder{ServerRelativeUrl: p.hdr.GetServerRelativeUrl()}
	err := p.each(tok, &f.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			f.Id = p.v(a)
		case "Name":
			f.Name = p.v(a)
		case "Url":
			f.Url = p.v(a)
		case "ParentFolderId":
			f.ParentFolderId = p.v(a)
		case "ParentWebId":
			f.ParentWebId = p.v(a)
		case "ParentWebUrl":
			f.ParentWebUrl = p.v(a)
		case "ContainingDocumentLibrary":
			f.ContainingDocumentLibrary = p.v(a)
		case "WelcomePageUrl":
			f.WelcomePageUrl = p.v(a)
		case "WelcomePageParameters":
			f.WelcomePageParameters = p.v(a)
		case "ListItemIntId":
			f.ListItemIntId = p.int64v(a)
		case "ProgId":
			f.ProgId = p.v(a)
		case "SortBehavior":
			f.SortBehavior = p.v(a)
		case "ScopeId":
			f.ScopeId = p.v(a)
		default:
			return p.audit(a, &f.Author, &f.ModifiedBy, &f.TimeCreated, &f.TimeLastModified, &f.Extra)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	err = p.only("Properties", &f.Properties)
	return f, err
}

func (p *Parser) listItem(tok *token) (*amrpipev1.ListItem, error) {
	li := &amrpipev1.ListItem{ServerRelativeUrl: p.hdr.GetServerRelativeUrl()}
	err := p.each(tok, &li.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			li.Id = p.v(a)
		case "IntId":
			li.IntId = p.int64v(a)
		case "Name":
			li.Name = p.v(a)
		case "DirName":
			li.DirName = p.v(a)
		case "FileUrl":
			li.FileUrl = p.v(a)
		case "DocId":
			li.DocId = p.v(a)
		case "Version":
			li.Version = p.v(a)
		case "ParentWebId":
			li.ParentWebId = p.v(a)
		case "ParentListId":
			li.ParentListId = p.v(a)
		case "ParentFolderId":
			li.ParentFolderId = p.v(a)
		case "ModerationStatus":
			li.ModerationStatus = p.v(a)
		case "ModerationComment":
			li.ModerationComment = p.v(a)
		case "ContentTypeId":
			li.ContentTypeId = p.v(a)
		case "ProgId":
			li.ProgId = p.v(a)
		case "Order":
			li.Order = p.floatv(a)
		case "ThreadIndex":
			li.ThreadIndex = p.v(a)
		case "DocType":
			li.DocType = p.v(a)
		case "UserLoginName":
			li.UserLoginName = p.v(a)
		case "GroupName":
			li.GroupName = p.v(a)
		case "FailureMessage":
			li.FailureMessage = p.v(a)
		case "ScopeId":
			li.ScopeId = p.v(a)
		default:
			return p.audit(a, &li.Author, &li.ModifiedBy, &li.TimeCreated, &li.TimeLastModified, &li.Extra)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	err = p.children(func(t *token) error {
		switch string(t.local) {
		case "Fields":
			return p.properties(&li.Fields)
		case "Versions":
			m := p.itemVersions.mark()
			err := p.children(func(t *token) error {
				if string(t.local) != "ListItem" {
					return p.skip()
				}
				v, err := p.listItemVersion(t)
				p.itemVersions.add(v)
				return err
			})
			li.Versions = p.itemVersions.take(m)
			return err
		case "Attachments":
			return p.children(func(t *token) error {
				if string(t.local) != "Attachment" {
					return p.skip()
				}
				at, err := p.attachment(t)
				li.Attachments = append(li.Attachments, at)
				return err
			})
		}
		return p.skip()
	})
	return li, err
}

func (p *Parser) listItemVersion(tok *token) (*amrpipev1.ListItemVersion, error) {
	v := &amrpipev1.ListItemVersion{}
	err := p.each(tok, &v.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			v.Id = p.v(a)
		case "Version":
			v.Version = p.v(a)
		case "ModerationStatus":
			v.ModerationStatus = p.v(a)
		case "ModerationComment":
			v.ModerationComment = p.v(a)
		case "IntId":
			v.IntId = p.int64v(a)
		default:
			return p.audit(a, &v.Author, &v.ModifiedBy, &v.TimeCreated, &v.TimeLastModified, &v.Extra)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	err = p.only("Fields", &v.Fields)
	return v, err
}

func (p *Parser) attachment(tok *token) (*amrpipev1.Attachment, error) {
	at := &amrpipev1.Attachment{}
	err := p.each(tok, &at.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			at.Id = p.v(a)
		case "Name":
			at.Name = p.v(a)
		case "DirName":
			at.DirName = p.v(a)
		case "Url":
			at.Url = p.v(a)
		case "FileValue":
			at.FileValue = p.v(a)
		default:
			return p.audit(a, &at.Author, &at.ModifiedBy, &at.TimeCreated, &at.TimeLastModified, &at.Extra)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return at, p.skip()
}

func (p *Parser) list(tok *token) (*amrpipev1.List, error) {
	l := &amrpipev1.List{DocumentLibrary: string(tok.local) == "DocumentLibrary"}
	err := p.each(tok, &l.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			l.Id = p.v(a)
		case "Title":
			l.Title = p.v(a)
		case "RootFolderId":
			l.RootFolderId = p.v(a)
		case "RootFolderUrl":
			l.RootFolderUrl = p.v(a)
		case "ParentWebId":
			l.ParentWebId = p.v(a)
		case "ParentWebUrl":
			l.ParentWebUrl = p.v(a)
		case "BaseType":
			l.BaseType = p.v(a)
		case "BaseTemplate":
			l.BaseTemplate = p.v(a)
		case "DocumentTemplateUrl":
			l.DocumentTemplateUrl = p.v(a)
		case "IsCatalog":
			l.IsCatalog = p.boolv(a)
		case "Description":
			l.Description = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return l, p.skip()
}

// generic keeps the element name and every attribute of an unmodelled element.
func (p *Parser) generic(tok *token) (*amrpipev1.GenericObject, error) {
	g := &amrpipev1.GenericObject{Element: p.intern(tok.local)}
	if err := p.each(tok, &g.Extra, func(*kv) bool { return false }); err != nil {
		return nil, err
	}
	return g, p.skip()
}

func (p *Parser) genericEntry(tok *token) (*amrpipev1.Record, error) {
	g, err := p.generic(tok)
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(g.Extra["Id"], g.Element)
	rec.Body = &amrpipev1.Record_GenericObject{GenericObject: g}
	return rec, nil
}

func (p *Parser) role(tok *token) (*amrpipev1.Record, error) {
	r := &amrpipev1.Role{}
	var id string
	err := p.each(tok, &r.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "RoleId":
			r.RoleId, id = p.int64v(a), p.v(a)
		case "Title":
			r.Title = p.v(a)
		case "Description":
			r.Description = p.v(a)
		case "PermMask":
			r.PermMask = p.v(a)
		case "Hidden":
			r.Hidden = p.boolv(a)
		case "RoleOrder":
			r.RoleOrder = p.int32v(a)
		case "Type":
			r.Type = p.int32v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(id, "Role")
	rec.Body = &amrpipev1.Record_Role{Role: r}
	return rec, p.skip()
}

func (p *Parser) roleAssignment(tok *token) (*amrpipev1.Record, error) {
	ra := &amrpipev1.RoleAssignment{}
	err := p.each(tok, &ra.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "ScopeId":
			ra.ScopeId = p.v(a)
		case "RoleDefWebId":
			ra.RoleDefWebId = p.v(a)
		case "RoleDefWebUrl":
			ra.RoleDefWebUrl = p.v(a)
		case "ObjectId":
			ra.ObjectId = p.v(a)
		case "ObjectType":
			ra.ObjectType = p.int32v(a)
		case "ObjectUrl":
			ra.ObjectUrl = p.v(a)
		case "AnonymousPermMask":
			ra.AnonymousPermMask = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	m := p.assignments.mark()
	err = p.children(func(t *token) error {
		if string(t.local) != "Assignment" {
			return p.skip()
		}
		as := &amrpipev1.Assignment{}
		err := p.each(t, &as.Extra, func(a *kv) bool {
			switch string(p.key(a)) {
			case "RoleId":
				as.RoleId = p.int64v(a)
			case "PrincipalId":
				as.PrincipalId = p.int64v(a)
			default:
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
		p.assignments.add(as)
		return p.skip()
	})
	ra.Assignments = p.assignments.take(m)
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(ra.ScopeId, "RoleAssignment")
	rec.Body = &amrpipev1.Record_RoleAssignment{RoleAssignment: ra}
	return rec, nil
}

func (p *Parser) user(tok *token) (*amrpipev1.Record, error) {
	u := &amrpipev1.User{}
	var id string
	err := p.each(tok, &u.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			u.Id, id = p.int64v(a), p.v(a)
		case "Name":
			u.Name = p.v(a)
		case "Login":
			u.Login = p.v(a)
		case "Email":
			u.Email = p.v(a)
		case "IsDomainGroup":
			u.IsDomainGroup = p.boolv(a)
		case "IsSiteAdmin":
			u.IsSiteAdmin = p.boolv(a)
		case "SystemId":
			u.SystemId = p.v(a)
		case "IsDeleted":
			u.IsDeleted = p.boolv(a)
		case "Flags":
			u.Flags = p.int64v(a)
		case "MobilePhone":
			u.MobilePhone = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(id, "User")
	rec.Body = &amrpipev1.Record_User{User: u}
	return rec, p.skip()
}

func (p *Parser) group(tok *token) (*amrpipev1.Record, error) {
	g := &amrpipev1.Group{}
	var id string
	err := p.each(tok, &g.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			g.Id, id = p.int64v(a), p.v(a)
		case "Name":
			g.Name = p.v(a)
		case "Description":
			g.Description = p.v(a)
		case "Owner":
			g.Owner = p.principal(a, &g.Extra)
		case "OwnerIsUser":
			g.OwnerIsUser = p.boolv(a)
		case "RequestToJoinLeaveEmailSetting":
			g.RequestToJoinLeaveEmailSetting = p.v(a)
		case "OnlyAllowMembersViewMembership":
			g.OnlyAllowMembersViewMembership = p.boolv(a)
		case "AllowMembersEditMembership":
			g.AllowMembersEditMembership = p.boolv(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	err = p.children(func(t *token) error {
		if string(t.local) != "Member" {
			return p.skip()
		}
		var ignored map[string]string // a Member has nothing else worth keeping
		err := p.each(t, &ignored, func(a *kv) bool {
			if string(p.key(a)) == "UserId" {
				g.MemberIds = append(g.MemberIds, p.int64v(a))
			}
			return true
		})
		if err != nil {
			return err
		}
		return p.skip()
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(id, "Group")
	rec.Body = &amrpipev1.Record_Group{Group: g}
	return rec, nil
}

// exportSettings builds the record of the ExportSettings root element; its
// children are read by the state machine.
func (p *Parser) exportSettings(tok *token) (*amrpipev1.Record, error) {
	es := &amrpipev1.ExportSettings{}
	err := p.each(tok, &es.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "SiteUrl":
			es.SiteUrl = p.v(a)
		case "FileLocation":
			es.FileLocation = p.v(a)
		case "BaseFileName":
			es.BaseFileName = p.v(a)
		case "IncludeSecurity":
			es.IncludeSecurity = p.v(a)
		case "IncludeVersions":
			es.IncludeVersions = p.v(a)
		case "ExportMethod":
			es.ExportMethod = p.v(a)
		case "ExportChangeToken":
			es.ExportChangeToken = p.v(a)
		case "SourceType":
			es.SourceType = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(es.SiteUrl, "ExportSettings")
	rec.Body = &amrpipev1.Record_ExportSettings{ExportSettings: es}
	return rec, p.done()
}

func (p *Parser) deploymentObject(tok *token) (*amrpipev1.Record, error) {
	d := &amrpipev1.DeploymentObject{}
	err := p.each(tok, &d.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			d.Id = p.v(a)
		case "Type":
			d.Type = p.v(a)
		case "ParentId":
			d.ParentId = p.v(a)
		case "Url":
			d.Url = p.v(a)
		case "ExcludeChildren":
			d.ExcludeChildren = p.boolv(a)
		case "IncludeDescendants":
			d.IncludeDescendants = p.v(a)
		case "ExportChangeToken":
			d.ExportChangeToken = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(d.Id, "DeploymentObject")
	rec.Body = &amrpipev1.Record_DeploymentObject{DeploymentObject: d}
	return rec, p.skip()
}

func (p *Parser) schemaVersion(tok *token) (*amrpipev1.Record, error) {
	v := &amrpipev1.SchemaVersion{}
	err := p.each(tok, &v.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Version":
			v.Version = p.v(a)
		case "Build":
			v.Build = p.v(a)
		case "DatabaseVersion":
			v.DatabaseVersion = p.v(a)
		case "SiteVersion":
			v.SiteVersion = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord("", "SchemaVersion")
	rec.Body = &amrpipev1.Record_SchemaVersion{SchemaVersion: v}
	return rec, p.skip()
}

func (p *Parser) manifestFile(tok *token) (*amrpipev1.Record, error) {
	m := &amrpipev1.ManifestFile{}
	err := p.each(tok, &m.Extra, func(a *kv) bool {
		if string(p.key(a)) != "Name" {
			return false
		}
		m.Name = p.v(a)
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(m.Name, "ManifestFile")
	rec.Body = &amrpipev1.Record_ManifestFile{ManifestFile: m}
	return rec, p.skip()
}

func (p *Parser) systemObject(tok *token) (*amrpipev1.Record, error) {
	o := &amrpipev1.SystemObject{}
	err := p.each(tok, &o.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			o.Id = p.v(a)
		case "Type":
			o.Type = p.v(a)
		case "Url":
			o.Url = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(o.Id, "SystemObject")
	rec.Body = &amrpipev1.Record_SystemObject{SystemObject: o}
	return rec, p.skip()
}

func (p *Parser) rootObject(tok *token) (*amrpipev1.Record, error) {
	o := &amrpipev1.RootObject{}
	err := p.each(tok, &o.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			o.Id = p.v(a)
		case "Type":
			o.Type = p.v(a)
		case "ParentId":
			o.ParentId = p.v(a)
		case "WebUrl":
			o.WebUrl = p.v(a)
		case "Url":
			o.Url = p.v(a)
		case "IsDependency":
			o.IsDependency = p.boolv(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(o.Id, "RootObject")
	rec.Body = &amrpipev1.Record_RootObject{RootObject: o}
	return rec, p.skip()
}

func (p *Parser) lookupList(tok *token) (*amrpipev1.Record, error) {
	l := &amrpipev1.LookupList{}
	err := p.each(tok, &l.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			l.Id = p.v(a)
		case "Url":
			l.Url = p.v(a)
		case "Included":
			l.Included = p.boolv(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	err = p.children(func(t *token) error {
		if string(t.local) != "LookupItems" {
			return p.skip()
		}
		return p.children(func(t *token) error {
			if string(t.local) != "LookupItem" {
				return p.skip()
			}
			it, err := p.lookupItem(t)
			l.Items = append(l.Items, it)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(l.Id, "LookupList")
	rec.Body = &amrpipev1.Record_LookupList{LookupList: l}
	return rec, nil
}

func (p *Parser) lookupItem(tok *token) (*amrpipev1.LookupItem, error) {
	it := &amrpipev1.LookupItem{}
	err := p.each(tok, &it.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			it.Id = p.int64v(a)
		case "DocId":
			it.DocId = p.v(a)
		case "Url":
			it.Url = p.v(a)
		case "Included":
			it.Included = p.boolv(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return it, p.skip()
}

func (p *Parser) requirement(tok *token) (*amrpipev1.Record, error) {
	r := &amrpipev1.Requirement{}
	err := p.each(tok, &r.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Type":
			r.Type = p.v(a)
		case "Id":
			r.Id = p.v(a)
		case "Name":
			r.Name = p.v(a)
		case "Data":
			r.Data = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(r.Id, "Requirement")
	rec.Body = &amrpipev1.Record_Requirement{Requirement: r}
	return rec, p.skip()
}

func (p *Parser) viewForm(tok *token) (*amrpipev1.Record, error) {
	v := &amrpipev1.ViewFormsListEntry{}
	err := p.each(tok, &v.Extra, func(a *kv) bool {
		switch string(p.key(a)) {
		case "Id":
			v.Id = p.v(a)
		case "Type":
			v.Type = p.v(a)
		default:
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	rec := p.newRecord(v.Id, "ViewForm")
	rec.Body = &amrpipev1.Record_ViewFormsListEntry{ViewFormsListEntry: v}
	return rec, p.skip()
}

// audit sets the authorship attributes that File, FileVersion, Folder,
// ListItem, ListItemVersion and Attachment share; false if a is not one.
func (p *Parser) audit(a *kv, author, modifiedBy *int64, created, modified **timestamppb.Timestamp, extra *map[string]string) bool {
	switch string(p.key(a)) {
	case "Author":
		*author = p.principal(a, extra)
	case "ModifiedBy":
		*modifiedBy = p.principal(a, extra)
	case "TimeCreated":
		*created = p.timev(a)
	case "TimeLastModified":
		*modified = p.timev(a)
	default:
		return false
	}
	return true
}

// only reads the children of the current element, keeping the entries of its
// container child (Properties or Fields) and skipping any other child.
func (p *Parser) only(container string, fields *[]*amrpipev1.Field) error {
	return p.children(func(t *token) error {
		if string(t.local) == container {
			return p.properties(fields)
		}
		return p.skip()
	})
}
