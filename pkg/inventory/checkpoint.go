package inventory

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// checkpointEvery spaces the checkpoints: a page several commits changed meanwhile is copied
// once.
var checkpointEvery = 500 * time.Millisecond

// checkpointer copies SQLite's write-ahead log into the database file on a goroutine of its
// own, beside the writer. With SQLite's automatic checkpoints the committing writer did it
// itself, every 1,000 pages: a third of the inventory sink's time in the demo (a batch's
// random-keyed index pages, written once to the log and again to the file), on the one
// goroutine that can write. A PASSIVE checkpoint waits for no reader or writer, so the next
// transaction runs while it copies; the writer restarts the log from its start once a
// checkpoint has copied all of it.
type checkpointer struct {
	db   *sql.DB
	kick chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	c.wg.Go(c.run)
	return c
}

// committed tells the checkpointer a write transaction committed; it never blocks.
func (c *checkpointer) committed() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default: // one is pending already: it will copy this commit's pages too
	}
}

func (c *checkpointer) run() {
	for {
		select {
		case <-c.quit:
			return
		case <-c.kick:
		}
		// An error (the database closing, a busy lock) leaves the pages in the log, where
		// readers find them; the next commit tries again, and closing the last connection
		// checkpoints whatever is left.
		_, _ = c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		select {
		case <-c.quit:
			return
		case <-time.After(checkpointEvery):
		}
	}
}

// stop ends the goroutine after the checkpoint in progress.
func (c *checkpointer) stop() {
	if c == nil {
		return
	}
	close(c.quit)
	c.wg.Wait()
}
