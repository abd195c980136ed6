package server

import "testing"

// TestPackageBuffersKeepTheLargest: exports hand their package buffers on; the server keeps the
// largest, one per worker, and gives the largest first.
func TestPackageBuffersKeepTheLargest(t *testing.T) {
	s := &Server{cfg: Config{Workers: 2}}
	s.keepBuffer(nil)
	for _, n := range []int{10, 30, 20} {
		s.keepBuffer(make([]byte, 0, n))
	}
	for _, want := range []int{30, 20} {
		if b := s.takeBuffer(); cap(b) != want {
			t.Fatalf("took a buffer of %d bytes, want %d", cap(b), want)
		}
	}
	if b := s.takeBuffer(); b != nil {
		t.Fatalf("took a buffer of %d bytes from none", cap(b))
	}
}
