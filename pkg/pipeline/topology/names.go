package topology

import (
	"errors"
	"fmt"
	"strings"
)

// MaxFileNameLen bounds the file part of a manifest name. SharePoint's names are short
// ("Manifest12.xml"); the bound keeps hostile input out of object names and log lines.
const MaxFileNameLen = 128

// ErrBadManifestName is wrapped by every ManifestFile refusal.
var ErrBadManifestName = errors.New("bad ManifestFileName")

// ManifestFile checks the ManifestFileName of a FinishManifestFileUpload event of job jobID and
// returns the file name inside the job's folder. The name comes from outside (SharePoint, or
// whoever can post to the report queue), so it is never used as a URL and never leaves
// "<jobID>/": it must be exactly "<jobID>/<file>" (the job id compared case-insensitively, as
// GUIDs are) with <file> a plain name of letters, digits, '.', '_' and '-', not starting with a
// dot, at most MaxFileNameLen bytes.
func ManifestFile(jobID, name string) (string, error) {
	folder, file, ok := strings.Cut(name, "/")
	switch {
	case !ok:
		return "", badName(name, "is not under a job folder")
	case !strings.EqualFold(folder, jobID):
		return "", badName(name, fmt.Sprintf("is outside the folder of job %s", jobID))
	case file == "":
		return "", badName(name, "has no file name")
	case len(file) > MaxFileNameLen:
		return "", badName(name, fmt.Sprintf("has a file name of %d bytes, over %d", len(file), MaxFileNameLen))
	case file[0] == '.':
		return "", badName(name, "names a dot file or a parent folder")
	}
	if i := strings.IndexFunc(file, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return "", badName(name, fmt.Sprintf("has %q in its file name (only letters, digits, '.', '_' and '-')", file[i:i+1]))
	}
	if strings.Contains(file, "..") {
		return "", badName(name, "has '..' in its file name")
	}
	return file, nil
}

// badName quotes a bounded copy of the name without any query string: a name that is really a
// URL may carry a signature there.
func badName(name, why string) error {
	const show = 160
	shown := name
	if i := strings.IndexAny(shown, "?&#"); i >= 0 {
		shown = shown[:i] + "?…"
	}
	if len(shown) > show {
		shown = strings.ToValidUTF8(shown[:show], "") + "…"
	}
	return fmt.Errorf("%w %q: %s", ErrBadManifestName, shown, why)
}

// ErrNotOurSubject is returned by SubjectJob and SubjectEvent for a subject the topology did not build.
var ErrNotOurSubject = errors.New("not a subject of the pipeline")

// SubjectJob returns the job id of a subject of JobSubject, EventSubject, ManifestSubject,
// RecordSubject or DoneSubject, checked as a token.
func SubjectJob(subject string) (string, error) {
	for _, p := range []string{prefixJobs, prefixManifests, prefixRecords, prefixDone} {
		if rest, ok := strings.CutPrefix(subject, p+"."); ok {
			return jobToken(subject, rest)
		}
	}
	job, _, err := SubjectEvent(subject)
	return job, err
}

// SubjectEvent returns the job id and the event name of an EventSubject.
func SubjectEvent(subject string) (jobID, event string, err error) {
	rest, ok := strings.CutPrefix(subject, prefixEvents+".")
	if !ok {
		return "", "", fmt.Errorf("%w: %q", ErrNotOurSubject, subject)
	}
	jobID, event, _ = strings.Cut(rest, ".")
	if _, err := jobToken(subject, jobID); err != nil {
		return "", "", err
	}
	if CheckToken(event) != nil {
		return "", "", fmt.Errorf("%w: %q has no event name", ErrNotOurSubject, subject)
	}
	return jobID, event, nil
}

func jobToken(subject, job string) (string, error) {
	if CheckToken(job) != nil {
		return "", fmt.Errorf("%w: %q has no job id token", ErrNotOurSubject, subject)
	}
	return job, nil
}
