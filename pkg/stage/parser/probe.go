package parser

import (
	"strconv"
	"strings"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// fieldTotalFiles is the hidden field of a folder's list item that counts the files below the
// folder, the count Microsoft's sizing guidance names (docs/amr-protocol.md §6.2). SharePoint has
// no recursive folder count.
const fieldTotalFiles = "SMTotalFileCount"

// probeScan collects, while a probe job's file is parsed, what the planner needs: the probed
// folder's direct subfolders with their file totals, and the number of its direct files and items.
// A subfolder's SPFolder and its list item (which carries the totals) may lie in different
// package files, so the job store merges scans by URL (jobstore.FileParsed).
type probeScan struct {
	jobURL  string // the probed URL, as in the spec
	root    []string
	folders []*amrpipev1.FolderSize
	byURL   map[string]*amrpipev1.FolderSize // lower-case URL
	files   int64
}

// newProbeScan returns nil for a job that is not a probe.
func newProbeScan(spec *amrpipev1.JobSpec) *probeScan {
	if !spec.GetProbe() || len(spec.GetUrls()) == 0 {
		return nil
	}
	u := strings.TrimRight(spec.GetUrls()[0], "/")
	return &probeScan{jobURL: u, root: appendPaths(nil, u), byURL: map[string]*amrpipev1.FolderSize{}}
}

// observe looks at every record of the file, published or not.
func (s *probeScan) observe(rec *amrpipev1.Record) {
	if s == nil || rec.GetSpObject().GetIsDeleted() {
		return
	}
	switch rec.GetBody().(type) {
	case *amrpipev1.Record_Folder, *amrpipev1.Record_File, *amrpipev1.Record_ListItem:
	default:
		return
	}
	path := recordPath(rec)
	tail, ok := s.directChild(path)
	if !ok {
		return
	}
	if !isFolder(rec) {
		// A library file is an SPFile and a list item with DocType File: count the file once.
		if li := rec.GetListItem(); li == nil || !strings.EqualFold(li.GetDocType(), "File") {
			s.files++
		}
		return
	}
	u := s.jobURL + "/" + tail
	f := s.byURL[strings.ToLower(u)]
	if f == nil {
		f = &amrpipev1.FolderSize{Url: strings.Clone(u), Files: -1, Folders: -1, TotalsUnknown: true}
		s.byURL[strings.ToLower(u)] = f
		s.folders = append(s.folders, f)
	}
	var fields []*amrpipev1.Field
	if li := rec.GetListItem(); li != nil {
		fields = li.GetFields()
	} else {
		fields = rec.GetFolder().GetProperties()
	}
	setTotals(f, fields)
}

// directChild returns the last segment of path when it is a direct child of the probed URL.
func (s *probeScan) directChild(path string) (string, bool) {
	for _, r := range s.root {
		if !under(path, r) || len(path) <= len(r)+1 {
			continue
		}
		tail := path[len(r)+1:]
		if r == "/" {
			tail = path[1:]
		}
		if tail != "" && !strings.Contains(tail, "/") {
			return tail, true
		}
	}
	return "", false
}

// setTotals takes SMTotalFileCount from a folder's fields: a folder's size is the number of files
// below it, so Folders is 0 once Files is known. Whether AMR writes the field into the manifest is
// not documented (docs/amr-protocol.md §4.1): a folder without it stays totals_unknown (Files and
// Folders -1), and the planner sizes it through the folder REST calls.
func setTotals(f *amrpipev1.FolderSize, fields []*amrpipev1.Field) {
	for _, fd := range fields {
		if !strings.EqualFold(fd.GetName(), fieldTotalFiles) {
			continue
		}
		if files := count(fd.GetValue()); files >= 0 {
			f.Files, f.Folders, f.TotalsUnknown = files, 0, false
		}
	}
}

// count reads a total as SharePoint may write it: "40", "40.0000000000000" or a lookup "1;#40".
// -1 when it is not a number.
func count(v string) int64 {
	v = strings.TrimSpace(v)
	if i := strings.LastIndex(v, ";#"); i >= 0 {
		v = v[i+2:]
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return n
	}
	if x, err := strconv.ParseFloat(v, 64); err == nil && x >= 0 && x < 1<<62 {
		return int64(x)
	}
	return -1
}

// probeResult is what goes back to the planner for a completed probe job.
func probeResult(r *amrpipev1.JobRecord) *amrpipev1.ProbeResult {
	spec := r.GetSpec()
	listID := ""
	if ids := spec.GetListIds(); len(ids) == 1 {
		listID = ids[0]
	}
	out := &amrpipev1.ProbeResult{Spec: spec, JobId: r.GetJobId(), DirectFiles: r.GetProbeDirectFiles()}
	for _, f := range r.GetProbeSubfolders() {
		out.Subfolders = append(out.Subfolders, &amrpipev1.FolderSize{
			Url: f.GetUrl(), WebUrl: spec.GetWebUrl(), ListId: listID,
			Files: f.GetFiles(), Folders: f.GetFolders(), TotalsUnknown: f.GetTotalsUnknown(),
		})
	}
	return out
}
