package client

import (
	"slices"
	"sync"
)

// Key is the downstream de-duplication key of a record (docs/pipeline.md, "Record batches"):
// a re-parse of a package file yields the same records at the same sequences, so two records
// with one Key are one record delivered twice. Across jobs an object's identity is
// (object_type, object_id); the later job's record is the object's later state.
type Key struct {
	JobID      string
	SourceFile string
	Sequence   uint64
}

// span is a half-open range [lo, hi) of record sequences.
type span struct{ lo, hi uint64 }

// spans is a sorted set of disjoint, non-adjacent spans: the sequences of one package file that
// were handed over. A file's batches tile its sequences, so it is usually one span, whatever the
// order batches arrive in.
type spans []span

// has reports whether x is in the set.
func (s spans) has(x uint64) bool {
	i, _ := slices.BinarySearchFunc(s, x, func(sp span, x uint64) int {
		switch {
		case sp.hi <= x:
			return -1
		case sp.lo > x:
			return 1
		}
		return 0
	})
	return i < len(s) && s[i].lo <= x && x < s[i].hi
}

// add puts x into the set, merging it with the spans it touches.
func (s spans) add(x uint64) spans {
	// i is the first span that ends at or after x (so it may contain x or touch it from above).
	i, _ := slices.BinarySearchFunc(s, x, func(sp span, x uint64) int {
		if sp.hi < x {
			return -1
		}
		return 1
	})
	switch {
	case i < len(s) && s[i].lo <= x && x < s[i].hi:
		return s // already there
	case i < len(s) && s[i].hi == x: // extends span i upwards
		s[i].hi++
		if i+1 < len(s) && s[i+1].lo == s[i].hi {
			s[i].hi = s[i+1].hi
			s = slices.Delete(s, i+1, i+2)
		}
		return s
	case i < len(s) && s[i].lo == x+1: // extends span i downwards
		s[i].lo--
		return s
	}
	return slices.Insert(s, i, span{x, x + 1})
}

// dedup remembers the keys handed over, per job and file, and forgets a job once it is certain
// nothing of it can come again (retire, sweep).
type dedup struct {
	mu   sync.Mutex
	jobs map[string]map[string]spans
	// retiring maps a job whose summary was seen to the records stream's last sequence at that
	// moment: every batch of the job is at or below it, so once the consumer's acknowledgement
	// floor reaches it, no batch of the job can be delivered again.
	retiring map[string]uint64
}

func newDedup() *dedup {
	return &dedup{jobs: map[string]map[string]spans{}, retiring: map[string]uint64{}}
}

// seen reports whether k was handed over already.
func (d *dedup) seen(k Key) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.jobs[k.JobID][k.SourceFile].has(k.Sequence)
}

// mark records that k was handed over.
func (d *dedup) mark(k Key) {
	d.mu.Lock()
	defer d.mu.Unlock()
	files := d.jobs[k.JobID]
	if files == nil {
		files = map[string]spans{}
		d.jobs[k.JobID] = files
	}
	files[k.SourceFile] = files[k.SourceFile].add(k.Sequence)
}

// retire notes that job's summary was seen while the records stream ended at lastSeq.
func (d *dedup) retire(job string, lastSeq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.retiring[job]; !ok || lastSeq > old {
		d.retiring[job] = lastSeq
	}
}

// pending reports whether a job waits to be forgotten.
func (d *dedup) pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.retiring) > 0
}

// sweep forgets every retiring job whose last possible batch is at or below ackFloor (the
// records stream sequence below which the consumer acknowledged everything).
func (d *dedup) sweep(ackFloor uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for job, last := range d.retiring {
		if last <= ackFloor {
			delete(d.jobs, job)
			delete(d.retiring, job)
		}
	}
}

// size is how many jobs and spans are remembered.
func (d *dedup) size() (jobs, spanCount int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, files := range d.jobs {
		for _, s := range files {
			spanCount += len(s)
		}
	}
	return len(d.jobs), spanCount
}
