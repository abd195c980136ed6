package inventory_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/inventory"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// TestWriteAheadLogIsCopiedWhileAPassRuns: SQLite's connections never checkpoint themselves, so
// without the store's checkpointer the log would hold every page of every commit until the store
// closed. While a pass ingests, the log stays a fraction of what it grows to when the checkpointer
// gets no turn after the first commit; after Close every object is in the file, read by a store
// opened afresh.
func TestWriteAheadLogIsCopiedWhileAPassRuns(t *testing.T) {
	ctx := context.Background()
	tn := smallTenant(t)
	recs := fullRead(t, tn, "job-1")
	// Set while no store runs: a store's checkpointer reads it.
	defer inventory.SetCheckpointEvery(inventory.SetCheckpointEvery(time.Hour))
	s, _, unchecked := pacedPass(t, recs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	inventory.SetCheckpointEvery(time.Millisecond)
	s, path, wal := pacedPass(t, recs)
	t.Logf("%d records in %d commits: log %d bytes with the checkpointer, %d with one checkpoint; database file %d bytes",
		len(recs), (len(recs)+pacedBatch-1)/pacedBatch, wal, unchecked, size(t, path))
	if wal > unchecked/2 {
		t.Errorf("the write-ahead log holds %d bytes, against %d with one checkpoint: the checkpointer copied little", wal, unchecked)
	}
	want := len(objects(t, s, inventory.Filter{IncludeDeleted: true}))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("the log is still there after Close (%v)", err)
	}
	s, err := inventory.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := len(objects(t, s, inventory.Filter{IncludeDeleted: true})); got != want || want == 0 {
		t.Errorf("%d objects after reopening, %d before closing", got, want)
	}
}

const pacedBatch = 200

// pacedPass ingests recs as one full pass into a new SQLite store, in commits of pacedBatch
// records a few milliseconds apart (the checkpointer's turn: a busy sink commits back to back);
// it returns the open store, its file and the log's size at the end.
func pacedPass(t *testing.T, recs []*amrpipev1.Record) (*inventory.Store, string, int64) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "inv.db")
	s, err := inventory.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	p := begin(t, s, inventory.Full)
	for off := 0; off < len(recs); off += pacedBatch {
		if err := p.Ingest(ctx, recs[off:min(off+pacedBatch, len(recs))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	end(t, p)
	return s, path, size(t, path+"-wal")
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestNewSQLiteFileHas16KiBPagesInWAL: a new inventory file is created with 16 KiB pages, in WAL
// mode (as its header says: offset 16, the page size; offsets 18 and 19, 2 for WAL). A file
// created otherwise before (4 KiB pages, rollback journal) opens, keeps its page size and is
// switched to WAL.
func TestNewSQLiteFileHas16KiBPagesInWAL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new.db")
	old := filepath.Join(dir, "old.db")
	db, err := sql.Open("sqlite", "file:"+old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA page_size = 4096; CREATE TABLE before_us (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		page int
	}{{fresh, 16384}, {old, 4096}} {
		s, err := inventory.Open(ctx, "sqlite:"+c.path)
		if err != nil {
			t.Fatal(err)
		}
		end(t, begin(t, s, inventory.Full))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(c.path)
		if err != nil {
			t.Fatal(err)
		}
		h := make([]byte, 20)
		_, err = io.ReadFull(f, h)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if page := int(binary.BigEndian.Uint16(h[16:])); page != c.page || h[18] != 2 || h[19] != 2 {
			t.Errorf("%s: page size %d, read/write versions %d/%d; want %d and 2/2 (WAL)", filepath.Base(c.path), page, h[18], h[19], c.page)
		}
	}
}
