package manifest

import (
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Allocation batching. A manifest element yields a dozen short strings and a
// few small messages; allocating each on its own made malloc and GC the
// largest cost of parsing. Strings are carved from shared chunks, Fields and
// Timestamps from slabs, and child slices are allocated once at their final
// size. The price: a consumer that keeps one string or Field of a record keeps
// its chunk (32 KiB) or slab (128 messages) alive. Clone what you retain for
// long.

const (
	stringChunk = 32 << 10
	slabSize    = 128
)

// stringArena hands out strings backed by shared chunks: a strings.Builder
// never changes bytes it has written (it copies when it grows), so substrings
// of its String stay valid while it is written on, and its buffer is not
// zeroed first.
type stringArena struct {
	b strings.Builder
}

// copy returns b as a string carved from the current chunk.
func (a *stringArena) copy(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if a.b.Cap()-a.b.Len() < len(b) {
		a.b = strings.Builder{}
		a.b.Grow(max(len(b), stringChunk))
	}
	base := a.b.Len()
	a.b.Write(b)
	return a.b.String()[base:]
}

// slabs hands out small messages from batch allocations. An index, not a
// re-slice, marks the next free one: that keeps pointer stores (and their GC
// write barriers) to one per batch.
type slabs struct {
	ts      []timestamppb.Timestamp
	tsNext  int
	fields  []amrpipev1.Field
	fldNext int
}

func (s *slabs) timestamp() *timestamppb.Timestamp {
	if s.tsNext == len(s.ts) {
		s.ts, s.tsNext = make([]timestamppb.Timestamp, slabSize), 0
	}
	s.tsNext++
	return &s.ts[s.tsNext-1]
}

func (s *slabs) field() *amrpipev1.Field {
	if s.fldNext == len(s.fields) {
		s.fields, s.fldNext = make([]amrpipev1.Field, slabSize), 0
	}
	s.fldNext++
	return &s.fields[s.fldNext-1]
}

// pending collects the children of one element in a reused buffer, so that
// the element's slice is allocated once at its final size. Nested use is safe:
// each level works above its own mark.
type pending[T any] struct {
	buf []T
}

func (q *pending[T]) mark() int { return len(q.buf) }

func (q *pending[T]) add(v T) { q.buf = append(q.buf, v) }

// take returns the items added since mark and drops them from the buffer.
func (q *pending[T]) take(mark int) []T {
	if len(q.buf) <= mark {
		return nil
	}
	out := make([]T, len(q.buf)-mark)
	copy(out, q.buf[mark:])
	clear(q.buf[mark:])
	q.buf = q.buf[:mark]
	return out
}
