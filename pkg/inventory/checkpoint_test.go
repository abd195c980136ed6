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
	"github.com/amrpipe/amrpipe/pkg/testenv"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// TestWriteAheadLogIsCopiedWhileAPassRuns: SQLite's connections never checkpoint themselves, so
// without the store's checkpointer the log would hold every page of every commit until the store
// closed. While a pass ingests, the log stays a fraction of the database file; after Close every
// object is in the file, read by a store opened afresh.
func TestWriteAheadLogIsCopiedWhileAPassRuns(t *testing.T) {
	defer inventory.SetCheckpointEvery(inventory.SetCheckpointEvery(time.Millisecond))
	ctx := context.Background()
	tn, err := tenant.New(tenant.SmallProfile())
	if err != nil {
		t.Fatal(err)
	}
	recs, err := testenv.ExportRecords(ctx, tn, "job-1", smallTargets(), fullOpts())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "inv.db")
	s, err := inventory.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	p := begin(t, s, inventory.Full)
	const batch = 200
	for off := 0; off < len(recs); off += batch {
		if err := p.Ingest(ctx, recs[off:min(off+batch, len(recs))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // the checkpointer's turn (a busy sink commits back to back)
	}
	end(t, p)
	db, wal := size(t, path), size(t, path+"-wal")
	t.Logf("%d records in %d commits: database file %d bytes, log %d bytes", len(recs), (len(recs)+batch-1)/batch, db, wal)
	if wal > db/2 {
		t.Errorf("the write-ahead log holds %d bytes beside a database file of %d: nothing copied it", wal, db)
	}
	want := len(objects(t, s, inventory.Filter{IncludeDeleted: true}))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("the log is still there after Close (%v)", err)
	}
	s, err = inventory.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := len(objects(t, s, inventory.Filter{IncludeDeleted: true})); got != want || want == 0 {
		t.Errorf("%d objects after reopening, %d before closing", got, want)
	}
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
