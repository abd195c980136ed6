package client

import (
	"slices"
	"testing"
)

func TestSpansKeepDisjointRangesInAnyOrder(t *testing.T) {
	tests := []struct {
		name string
		add  []uint64
		want spans
	}{
		{"in order", []uint64{0, 1, 2, 3}, spans{{0, 4}}},
		{"reverse", []uint64{3, 2, 1, 0}, spans{{0, 4}}},
		{"a gap filled later", []uint64{0, 1, 5, 6, 2, 3, 4}, spans{{0, 7}}},
		{"two gaps", []uint64{10, 0, 20, 11, 1}, spans{{0, 2}, {10, 12}, {20, 21}}},
		{"a repeat", []uint64{4, 4, 5, 4}, spans{{4, 6}}},
		{"joins both sides", []uint64{1, 3, 2}, spans{{1, 4}}},
		{"a later batch first", []uint64{5, 6, 7, 8, 9, 0, 1, 2, 3, 4}, spans{{0, 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s spans
			for _, x := range tt.add {
				s = s.add(x)
			}
			if !slices.Equal(s, tt.want) {
				t.Fatalf("spans %v, want %v", s, tt.want)
			}
			for _, x := range tt.add {
				if !s.has(x) {
					t.Errorf("has(%d) = false after adding it", x)
				}
			}
			for x := range uint64(25) {
				if s.has(x) != slices.Contains(tt.add, x) {
					t.Errorf("has(%d) = %v", x, s.has(x))
				}
			}
		})
	}
}

func TestDedupForgetsARetiredJobOnlyPastItsLastBatch(t *testing.T) {
	d := newDedup()
	k := Key{"job-1", "Manifest1.xml", 7}
	d.mark(k)
	d.mark(Key{"job-2", "Manifest1.xml", 0})
	if !d.seen(k) || d.seen(Key{"job-1", "Manifest2.xml", 7}) {
		t.Fatal("seen is keyed on job, file and sequence")
	}
	d.retire("job-1", 100)
	d.sweep(99)
	if !d.seen(k) {
		t.Fatal("forgot job-1 before the acknowledgement floor reached its summary")
	}
	d.sweep(100)
	if d.seen(k) || d.pending() {
		t.Fatal("job-1 still remembered after the floor passed its summary")
	}
	if jobs, _ := d.size(); jobs != 1 {
		t.Fatalf("%d jobs remembered, want job-2 only", jobs)
	}
}
