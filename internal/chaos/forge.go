package chaos

// This file forges report-queue messages: what anyone holding the queue's Add SAS (which every
// AMR job hands to SharePoint) could post. The relay must dead-letter each with its reason and
// let none change a job.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Forgery is one forged queue message.
type Forgery struct {
	// Kind says what was forged.
	Kind string
	// Job is the job the forged event is of (whose state it would change).
	Job string
	// Text is the queue message as posted (base64, as SharePoint posts).
	Text string
	// Reason is what the relay's dead letter must say (a substring of its reason).
	Reason string
	// EventID is the forged event's id (amrevent.EventID), "" when it does not decode at all: a
	// relayed forgery would be on AMR_EVENTS and in amr_seen under it.
	EventID string
	// File is the package file a forged upload names ("" for other events): no job may expect it.
	File string
}

// ForgedFile is the name forged uploads give: no job of SharePoint's has it.
const ForgedFile = "Manifest-forged.xml"

// Forge makes the forgeries against two encrypted jobs a and b (each with a key in the store): a
// plain JobEnd and a plain FinishManifestFileUpload for a, a's JobEnd in b's envelope, a's JobEnd
// in a's envelope sealed with b's key, and an event of a whose name is 5 KB long in a's envelope.
func Forge(ctx context.Context, store *jobstore.Store, kek *keywrap.KEK, now time.Time, a, b *amrpipev1.JobRecord) ([]Forgery, error) {
	keyA, err := store.OpenKey(ctx, a.GetSpec().GetSpecId(), kek, now)
	if err != nil {
		return nil, fmt.Errorf("key of job %s: %w", a.GetJobId(), err)
	}
	keyB, err := store.OpenKey(ctx, b.GetSpec().GetSpecId(), kek, now)
	if err != nil {
		return nil, fmt.Errorf("key of job %s: %w", b.GetJobId(), err)
	}
	idA, idB := a.GetJobId(), b.GetJobId()
	// A time SharePoint never wrote for these jobs (2001), so the ids differ from any real event's.
	event := func(n int, name string, extra ...string) map[string]string {
		ev := map[string]string{"Event": name, "JobId": idA, "Time": fmt.Sprintf("01/02/2001 03:04:05.%03d", n),
			"CorrelationId": fmt.Sprintf("00000000-0000-4000-8000-%012d", n)}
		for i := 0; i+1 < len(extra); i += 2 {
			ev[extra[i]] = extra[i+1]
		}
		return ev
	}
	forged := []struct {
		kind, reason string
		ev           map[string]string
		envJob       string // "" for a plain message
		key          []byte
	}{
		{"plain JobEnd", "not SharePoint's", event(1, "JobEnd"), "", nil},
		{"plain FinishManifestFileUpload", "not SharePoint's",
			event(2, "FinishManifestFileUpload", "ManifestFileName", idA+"/"+ForgedFile, "FileSize", "1024"), "", nil},
		{"event of job A in job B's envelope", "carries an event of job", event(3, "JobEnd"), idB, keyB},
		{"job A's envelope sealed with job B's key", "decrypt message of job", event(4, "JobEnd"), idA, keyB},
		{"5 KB event name", "over its bounds", event(5, strings.Repeat("JobEnd", 5<<10/len("JobEnd"))), idA, keyA},
	}
	out := make([]Forgery, 0, len(forged))
	for _, f := range forged {
		plain, err := json.Marshal(f.ev)
		if err != nil {
			return nil, err
		}
		body := plain
		if f.envJob != "" {
			if body, err = envelope(f.envJob, f.key, plain); err != nil {
				return nil, err
			}
		}
		g := Forgery{Kind: f.kind, Job: idA, Text: base64.StdEncoding.EncodeToString(body), Reason: f.reason}
		if ev, err := amrevent.DecodeEvent(plain); err == nil {
			g.EventID = amrevent.EventID(ev)
		}
		if name, ok := f.ev["ManifestFileName"]; ok {
			g.File = name[strings.LastIndex(name, "/")+1:]
		}
		out = append(out, g)
	}
	return out, nil
}

// envelope seals an event as SharePoint seals a queue message of an encrypted job:
// {"Label":"Encrypted","JobId","IV","Content"}, AES-256-CBC with a fresh IV.
func envelope(jobID string, key, plain []byte) ([]byte, error) {
	iv := make([]byte, 16)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	ct, err := aescbc.Encrypt(key, iv, plain)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"Label": "Encrypted", "JobId": jobID,
		"IV": base64.StdEncoding.EncodeToString(iv), "Content": base64.StdEncoding.EncodeToString(ct)})
}
