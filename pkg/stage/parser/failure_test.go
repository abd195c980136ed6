package parser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// syntaxOffset is the byte offset pkg/sharepoint/manifest reports for data.
func syntaxOffset(t *testing.T, data []byte) int64 {
	t.Helper()
	err := manifest.Parse(context.Background(), bytes.NewReader(data), manifest.Options{}, func(*amrpipev1.Record) error { return nil })
	var se *manifest.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("fixture parses without a syntax error: %v", err)
	}
	return se.Offset
}

// TestPoisonFiles: a file that cannot be parsed is dead-lettered with the parser's byte offset,
// recorded in the job, and the job's summary says failed and lists the error; no token.
func TestPoisonFiles(t *testing.T) {
	h := newHarness(t)
	h.startParser(Config{BatchSize: 8})
	good := generated(t, 21, 40<<10)
	cut := bytes.LastIndex(good[:len(good)*2/3], []byte("<SPObject "))
	broken := append(append(bytes.Clone(good[:cut]), `<SPObject Id="x" <File />`...), good[cut:]...)
	tests := []struct {
		name     string
		data     []byte
		want     string // in the dead letter's reason
		wantDocs bool   // batches before the error are on the subject
	}{
		{"syntax error", broken, fmt.Sprintf("byte offset %d (line", syntaxOffset(t, broken)), true},
		{"DOCTYPE", []byte(`<?xml version="1.0"?><!DOCTYPE SPObjects [<!ENTITY x "y">]><SPObjects/>`), "byte offset", false},
		{"unknown file", []byte(`<Report xmlns="urn:other"><Row/></Report>`), "unknown root element", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobID := fmt.Sprintf("22222222-bbbb-4ccc-8ddd-%012d", i)
			spec := allSpec()
			spec.TokenListId = listID
			h.putJob(jobID, spec, "token-"+jobID, "Manifest.xml", "Manifest1.xml")
			h.ready(h.putFile(jobID, "Manifest.xml", good), jobID+"/Manifest.xml")
			h.ready(h.putFile(jobID, "Manifest1.xml", tt.data), jobID+"/Manifest1.xml")
			h.end(jobID, topology.EventJobEnd, "end-"+jobID)
			rec := h.settled(jobID, inState(amrpipev1.JobState_JOB_STATE_FAILED))

			var dl *amrpipev1.DeadLetter
			for _, d := range h.deadLetters() {
				if d.GetSubject() == topology.ManifestSubject(jobID) {
					if dl != nil {
						t.Fatalf("two dead letters for job %s", jobID)
					}
					dl = d
				}
			}
			if dl == nil || !strings.Contains(dl.GetReason(), "Manifest1.xml") || !strings.Contains(dl.GetReason(), tt.want) {
				t.Fatalf("dead letter %v, want a reason naming Manifest1.xml with %q", dl, tt.want)
			}
			if !strings.Contains(rec.GetLastError(), tt.want) || !slices.Equal(rec.GetFilesFailed(), []string{"Manifest1.xml"}) {
				t.Errorf("job record last_error %q, files_failed %v", rec.GetLastError(), rec.GetFilesFailed())
			}
			sums := h.summaries(jobID)
			if len(sums) != 1 || !sums[0].GetFailed() || len(sums[0].GetErrors()) == 0 || !strings.Contains(sums[0].GetErrors()[0], tt.want) ||
				sums[0].GetChangeToken() != "" || !slices.Equal(sums[0].GetFiles(), []string{"Manifest.xml"}) {
				t.Errorf("summaries %v, want one failed summary listing the error", sums)
			}
			if _, _, err := h.store.Token(context.Background(), listID); !errors.Is(err, jobstore.ErrNotFound) {
				t.Errorf("a token was committed for a failed job (%v)", err)
			}
			var bad1, last int
			for _, b := range h.batches(jobID) {
				if b.GetSourceFile() == "Manifest1.xml" {
					bad1++
					if b.GetLast() {
						last++
					}
				}
			}
			if last != 0 || (bad1 > 0) != tt.wantDocs {
				t.Errorf("Manifest1.xml: %d batches, %d with last=true; want batches before the error: %t, none last", bad1, last, tt.wantDocs)
			}
		})
	}
}

// TestJobEndsBadly: a fatal error or a cancellation gives a failed summary, once, and no token.
func TestJobEndsBadly(t *testing.T) {
	h := newHarness(t)
	h.startParser(Config{})
	for i, event := range []string{topology.EventJobFatalError, topology.EventJobCancelled} {
		t.Run(event, func(t *testing.T) {
			jobID := fmt.Sprintf("33333333-cccc-4ddd-8eee-%012d", i)
			spec := allSpec()
			spec.TokenListId = listID
			h.putJob(jobID, spec, "token", "Manifest.xml")
			h.ready(h.putFile(jobID, "Manifest.xml", generated(t, 5, 20<<10)), jobID+"/Manifest.xml")
			h.end(jobID, event, "fatal-"+jobID)
			h.end(jobID, event, "fatal-again-"+jobID)
			rec := h.settled(jobID, inState(amrpipev1.JobState_JOB_STATE_FAILED))
			sums := h.summaries(jobID)
			if len(sums) != 1 || !sums[0].GetFailed() || sums[0].GetChangeToken() != "" || !slices.Contains(sums[0].GetErrors(), rec.GetLastError()) {
				t.Errorf("summaries %v, want one failed summary with the job's last error %q", sums, rec.GetLastError())
			}
			if _, _, err := h.store.Token(context.Background(), listID); !errors.Is(err, jobstore.ErrNotFound) {
				t.Errorf("a token was committed for a failed job (%v)", err)
			}
		})
	}
}

// TestStalledJobEndsFailed: the end was seen and confirmed, but one announced file never arrives
// (its upload event was lost, its decryption hangs): the watchdog fails the file once the job has
// not changed for -stall-timeout, and the job ends failed, naming it, with no token.
func TestStalledJobEndsFailed(t *testing.T) {
	h := newHarness(t)
	h.startParser(Config{StallTimeout: 300 * time.Millisecond, WatchInterval: 50 * time.Millisecond})
	jobID := "44444444-dddd-4eee-8fff-000000000000"
	spec := allSpec()
	spec.TokenListId = listID
	h.putJob(jobID, spec, "token", "Manifest.xml", "Manifest1.xml")
	h.ready(h.putFile(jobID, "Manifest.xml", generated(t, 5, 20<<10)), jobID+"/Manifest.xml")
	h.end(jobID, topology.EventJobEnd, "end-"+jobID)
	rec := h.settled(jobID, inState(amrpipev1.JobState_JOB_STATE_FAILED))
	if !slices.Contains(rec.GetFilesFailed(), "Manifest1.xml") || !strings.Contains(rec.GetLastError(), "Manifest1.xml") {
		t.Fatalf("record %v; want Manifest1.xml failed by the watchdog", rec)
	}
	if sums := h.summaries(jobID); len(sums) != 1 || !sums[0].GetFailed() || sums[0].GetChangeToken() != "" {
		t.Fatalf("summaries %v, want one failed summary without a token", sums)
	}
	if _, _, err := h.store.Token(context.Background(), listID); !errors.Is(err, jobstore.ErrNotFound) {
		t.Errorf("a token was committed for a stalled job (%v)", err)
	}
}
