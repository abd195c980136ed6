package inventory

import (
	"encoding/binary"
	"hash/fnv"
	"testing"
	"time"
)

// TestObjectHashIsFNV1a: the digest stored in the hash column stays FNV-1a of the compared fields
// as inventories written before hash was spelled out hold it, so a pass over an unchanged tenant
// still finds every hash equal.
func TestObjectHashIsFNV1a(t *testing.T) {
	for _, o := range []Object{
		{},
		{URL: "/sites/hr/Shared Documents/a.docx", Name: "a.docx", ParentID: "p", ListID: "l", Size: 1 << 40,
			Modified: time.Date(2026, 12, 5, 8, 0, 0, 123456000, time.UTC), Author: 7, Editor: -3, Version: "3.0", VersionCount: 3},
		{URL: "/é/ü", Name: "\x00", Version: "1.0", Size: -1},
	} {
		h := fnv.New64a()
		var n [8]byte
		for _, s := range []string{o.URL, o.Name, o.ParentID, o.ListID} {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		for _, v := range []int64{o.Size, micros(o.Modified), o.Author, o.Editor} {
			binary.LittleEndian.PutUint64(n[:], uint64(v))
			h.Write(n[:])
		}
		h.Write([]byte(o.Version))
		h.Write([]byte{0})
		binary.LittleEndian.PutUint64(n[:], uint64(o.VersionCount))
		h.Write(n[:])
		if got, want := o.hash(), int64(h.Sum64()); got != want {
			t.Errorf("hash of %+v = %d, want FNV-1a %d", o, got, want)
		}
	}
}
