package submitter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// The sweeper walks the manifest container, which the submitter names and so owns: SharePoint
// writes each job's blobs under "<JobId>/" in it. Two duties share the walk:
//
//   - Reconciling (every -reconcile-interval while a spec marked ambiguous waits for its job, and
//     at every janitor sweep while marks last): a job folder that no job record accounts for,
//     whose blob decrypts with the key of a marked spec, is that spec's job (the key is fresh per
//     spec and SharePoint got it only in that spec's create calls). If the spec is still waiting,
//     the job becomes its outcome (the claim's found_job_id, settled by the spec's next delivery);
//     if the spec has another outcome, the job is an orphan: recorded, never followed, its blobs
//     deleted. DeleteMigrationJob is not called: Microsoft documents it for import jobs only, not
//     for AMR read jobs (docs/amr-protocol.md §1.1).
//   - The janitor (every -janitor-interval): deletes the folder of every job that is done or
//     failed for longer than -blob-retention, and of every orphan.
//
// A folder of plaintext blobs cannot be attributed to a spec; like any folder nothing accounts
// for, it is left alone and counted (amr_submitter_unclaimed_job_folders).

const (
	// sweepPages bounds the listing pages of one sweep (5,000 job folders each).
	sweepPages = 200
	// sweepDeletes bounds the blobs one sweep deletes; the next sweep goes on.
	sweepDeletes = 20000
	// sampleBytes is how much of a blob is read to try a key on it.
	sampleBytes = 4096
	// knownJobs bounds the cache of job folders known to have a record.
	knownJobs = 200000
)

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// sweeper runs the sweeps until ctx ends.
func (s *Stage) sweeper(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	var janitorAt time.Time
	for {
		janitor := s.cfg.JanitorInterval > 0 && time.Since(janitorAt) >= s.cfg.JanitorInterval
		kind := "reconcile"
		if janitor {
			kind = "janitor"
		}
		if err := s.sweep(ctx, janitor); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.m.sweeps.WithLabelValues(kind, "error").Inc()
			s.log.Warn("sweep of the manifest container", "kind", kind, "err", sas.Redact(err.Error()))
		} else if janitor {
			janitorAt = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// markedSpec is a spec marked ambiguous, with its key.
type markedSpec struct {
	id  string
	key []byte
}

// sweep walks the container once: reconciling while a marked spec waits for its job, and the
// janitor's work when janitor is set (which also finds late jobs of marked specs that have their
// outcome: orphans). It does nothing when neither has work.
func (s *Stage) sweep(ctx context.Context, janitor bool) error {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	marked, waiting, err := s.markedSpecs(ctx)
	defer func() {
		for _, m := range marked {
			clear(m.key)
		}
	}()
	if err != nil {
		return err
	}
	if !waiting && !janitor {
		return nil
	}
	kind := "reconcile"
	if janitor {
		kind = "janitor"
	}
	cc := s.deps.Storage.Blob().ServiceClient().NewContainerClient(s.account.Container)
	w := &walk{s: s, cc: cc, marked: marked, janitor: janitor, now: s.deps.Now(), deletes: sweepDeletes}
	pager := cc.NewListBlobsHierarchyPager("/", &container.ListBlobsHierarchyOptions{MaxResults: ptr(int32(5000))})
	for page := 0; pager.More(); page++ {
		if page == sweepPages {
			s.log.Warn("manifest container sweep stopped at its page bound; the next sweep starts over", "pages", page)
			break
		}
		resp, err := pager.NextPage(ctx)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			break // no job wrote anything yet
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", s.account.Container, err)
		}
		for _, p := range resp.Segment.BlobPrefixes {
			if p.Name == nil {
				continue
			}
			if err := w.folder(ctx, strings.TrimSuffix(*p.Name, "/")); err != nil {
				return err
			}
		}
	}
	s.m.unclaimed.Set(float64(w.unclaimed))
	s.m.sweeps.WithLabelValues(kind, "ok").Inc()
	return nil
}

// markedSpecs returns the specs marked ambiguous with their keys, dropping marks past their time
// and those whose key is gone (nothing can be attributed to them any more); waiting says one of
// them has no outcome yet (its job is looked for at every reconcile sweep, not just the janitor's).
func (s *Stage) markedSpecs(ctx context.Context) (out []markedSpec, waiting bool, err error) {
	marks, err := s.deps.Jobs.AmbiguousSpecs(ctx)
	if err != nil {
		return nil, false, err
	}
	now := s.deps.Now()
	for _, m := range marks {
		if now.After(m.GetUntil().AsTime()) {
			if err := s.deps.Jobs.UnmarkAmbiguous(ctx, m.GetSpecId()); err != nil {
				return out, false, err
			}
			continue
		}
		if s.cfg.Plaintext {
			continue // no key: its jobs cannot be told apart
		}
		key, err := s.deps.Jobs.OpenKey(ctx, m.GetSpecId(), s.deps.KEK, now)
		if err != nil {
			if !errors.Is(err, jobstore.ErrNotFound) {
				s.log.Warn("the key of a spec marked ambiguous cannot be opened; its jobs cannot be found", "spec_id", m.GetSpecId(), "err", err)
			}
			continue
		}
		out = append(out, markedSpec{id: m.GetSpecId(), key: key})
		if !waiting {
			sub, err := s.deps.Jobs.Submission(ctx, m.GetSpecId())
			if err != nil {
				return out, false, err
			}
			waiting = !jobstore.HasOutcome(sub)
		}
	}
	return out, waiting, nil
}

// walk is one sweep's state.
type walk struct {
	s         *Stage
	cc        *container.Client
	marked    []markedSpec
	janitor   bool
	now       time.Time
	deletes   int // blobs this sweep may still delete
	unclaimed int
}

// folder handles one job folder of the container.
func (w *walk) folder(ctx context.Context, jobID string) error {
	s := w.s
	if !guidRE.MatchString(jobID) {
		w.unclaimed++
		return nil
	}
	if !w.janitor {
		if _, ok := s.known[jobID]; ok {
			return nil
		}
	}
	rec, _, err := s.deps.Jobs.Job(ctx, jobID)
	switch {
	case err == nil:
		if len(s.known) >= knownJobs {
			clear(s.known)
		}
		s.known[jobID] = struct{}{}
		if w.janitor && jobstore.Final(rec) && rec.GetContainer() == s.account.Container &&
			w.now.Sub(rec.GetUpdated().AsTime()) >= s.cfg.BlobRetention {
			return w.delete(ctx, jobID, "retention")
		}
		return nil
	case !errors.Is(err, jobstore.ErrNotFound):
		return err
	}
	orphan, err := s.deps.Jobs.Orphan(ctx, jobID)
	if err != nil {
		return err
	}
	if orphan != nil {
		return w.delete(ctx, jobID, "orphan")
	}
	if len(w.marked) == 0 {
		w.unclaimed++
		return nil
	}
	specID, err := w.attribute(ctx, jobID)
	if err != nil {
		return err
	}
	if specID == "" {
		w.unclaimed++
		return nil
	}
	return w.found(ctx, specID, jobID)
}

// attribute returns the marked spec whose key decrypts a blob of the job's folder ("" when none
// does: a plaintext job, another tool's, or one whose spec is not marked).
func (w *walk) attribute(ctx context.Context, jobID string) (string, error) {
	pager := w.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: ptr(jobID + "/"), MaxResults: ptr(int32(3))})
	if !pager.More() {
		return "", nil
	}
	page, err := pager.NextPage(ctx)
	if err != nil {
		return "", fmt.Errorf("list %s/%s: %w", w.s.account.Container, jobID, err)
	}
	for _, item := range page.Segment.BlobItems {
		if item.Name == nil {
			continue
		}
		resp, err := w.cc.NewBlobClient(*item.Name).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Count: sampleBytes}})
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", *item.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, sampleBytes))
		_ = resp.Body.Close() // read whole or failed: nothing more to learn from it
		if err != nil {
			return "", fmt.Errorf("read %s: %w", *item.Name, err)
		}
		iv, err := aescbc.IVFromMetadata(resp.Metadata)
		if err != nil {
			continue // not encrypted (or not SharePoint's): no key can claim it
		}
		for _, m := range w.marked {
			if decryptsAsXML(m.key, iv, data) {
				return m.id, nil
			}
		}
	}
	return "", nil
}

// decryptsAsXML reports whether the start of a blob decrypts with key to the start of an XML
// document (aescbc.ExpectXML: a wrong key passes well under once in a million tries).
func decryptsAsXML(key, iv, data []byte) bool {
	r, err := aescbc.NewReader(bytes.NewReader(data), key, iv, aescbc.WithExpect(aescbc.ExpectXML), aescbc.WithBufferSize(len(data)+16))
	if err != nil {
		return false
	}
	buf := make([]byte, 64)
	n, err := io.ReadFull(r, buf)
	return !errors.Is(err, aescbc.ErrWrongKey) && n >= 16
}

// found settles what a job found with a spec's key is: the spec's job while it waits for one,
// nothing more when it is the spec's job already, else an orphan.
func (w *walk) found(ctx context.Context, specID, jobID string) error {
	s := w.s
	now := timestamppb.New(w.now)
	var orphan *amrpipev1.OrphanJob
	_, err := s.deps.Jobs.UpdateSubmission(ctx, specID, func(cur *amrpipev1.Submission) (*amrpipev1.Submission, error) {
		orphan = nil
		c := cur.GetClaim()
		switch {
		case c != nil && c.GetFoundJobId() == "":
			next := proto.Clone(cur).(*amrpipev1.Submission)
			next.GetClaim().FoundJobId, next.GetClaim().Found = jobID, now
			return next, nil
		case c != nil && c.GetFoundJobId() == jobID, cur.GetJob().GetJobId() == jobID:
			return nil, jobstore.ErrNoChange
		}
		reason := "the spec has another outcome"
		switch {
		case cur == nil:
			reason = "the spec has no submission any more"
		case c != nil:
			reason = "another job of the spec was found first: " + c.GetFoundJobId()
		case cur.GetJob() != nil:
			reason = "the spec's job is " + cur.GetJob().GetJobId()
		case cur.GetFailed() != "":
			reason = "the spec was given up"
		}
		orphan = &amrpipev1.OrphanJob{JobId: jobID, SpecId: specID, Found: now, Reason: reason}
		if cur == nil {
			return nil, jobstore.ErrNoChange
		}
		for _, o := range cur.GetOrphans() {
			if o.GetJobId() == jobID {
				return nil, jobstore.ErrNoChange
			}
		}
		next := proto.Clone(cur).(*amrpipev1.Submission)
		next.Orphans = append(next.Orphans, orphan)
		return next, nil
	})
	if err != nil {
		return err
	}
	if orphan == nil {
		s.log.Info("found the job of a create call with an unknown outcome", "spec_id", specID, "job_id", jobID)
		return nil
	}
	created, err := s.deps.Jobs.PutOrphan(ctx, orphan)
	if err != nil {
		return err
	}
	if created {
		s.m.orphans.Inc()
		s.log.Warn("orphan AMR job found: not followed, its manifests deleted (DeleteMigrationJob is not documented for AMR jobs, so it runs on at SharePoint)",
			"spec_id", specID, "job_id", jobID, "reason", orphan.GetReason())
	}
	return w.delete(ctx, jobID, "orphan")
}

// delete deletes the blobs of a job folder, within the sweep's budget.
func (w *walk) delete(ctx context.Context, jobID, reason string) error {
	pager := w.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: ptr(jobID + "/")})
	n := 0
	defer func() {
		if n > 0 {
			w.s.m.deleted.WithLabelValues(reason).Add(float64(n))
			w.s.log.Info("manifest blobs deleted", "job_id", jobID, "blobs", n, "reason", reason)
		}
	}()
	for pager.More() && w.deletes > 0 {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s/%s: %w", w.s.account.Container, jobID, err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil || w.deletes == 0 {
				continue
			}
			_, err := w.cc.NewBlobClient(*item.Name).Delete(ctx, nil)
			if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
				return fmt.Errorf("delete %s: %w", *item.Name, err)
			}
			n++
			w.deletes--
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
