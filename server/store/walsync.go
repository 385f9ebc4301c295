package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Pipelined durability (SQLite only). The writer's connection runs
// synchronous=NORMAL: its COMMIT appends the group's frames to the WAL file and
// returns without an fsync. The writer hands the committed group to the syncer
// goroutine and goes on with the next group at once; the syncer makes the WAL file
// durable (syncWAL: fdatasync of the -wal file, which covers every frame written
// before it, so one sync answers every group waiting) and only then answers the
// group's callers. An Update that returns nil is therefore on disk, exactly as with
// synchronous=FULL, where SQLite syncs the same file at the end of the same COMMIT;
// what NORMAL keeps syncing by itself (the WAL header after a restart of the WAL,
// the WAL before a checkpoint copies it and the database file after) is unchanged
// (docs/operations.md §10, seventh round). The difference: between COMMIT and the
// sync, the group's writes are visible to readers although a power cut could still
// take them (with FULL SQLite publishes a commit only after its sync); nothing a
// caller is told waits on less than the sync.
//
// A failed sync leaves the WAL on disk in a state nobody knows (the kernel may
// have dropped the pages it could not write, and a later sync may succeed without
// them), so a later group's sync cannot prove anything either: every caller the
// failed sync covered, and every Update after it, fails with ErrSyncFailed until
// the server is restarted and SQLite recovers the database from what the disk
// holds, as PostgreSQL stops on a failed fsync of its WAL.

// ErrSyncFailed is returned (wrapped) by Update once an fsync of SQLite's WAL
// file failed: the transaction was committed but may not be on disk, and no write
// is taken any more until the server is restarted.
var ErrSyncFailed = errors.New("database sync failed; writes stopped until restart")

// walSyncQueue is how many committed groups may wait for the syncer before the
// writer waits for it.
const walSyncQueue = 16

// walGroup is a committed group waiting for its sync, or (done non-nil) a barrier:
// done is closed once every group sent before it has been answered.
type walGroup struct {
	reqs []*writeReq
	wal  *os.File // the writer connection's WAL file, which holds the group's commit
	done chan struct{}
}

// walState is the syncer's side of the Store (SQLite only; nil on PostgreSQL).
type walState struct {
	q    chan walGroup
	done chan struct{} // closed when the syncer stopped
	// sync makes f durable; fdatasync (syncFile) outside tests.
	sync func(f *os.File) error

	mu  sync.Mutex
	err error // the failed sync, for good
}

// startSyncer starts the syncer goroutine (SQLite).
func (s *Store) startSyncer() {
	s.wal = &walState{q: make(chan walGroup, walSyncQueue), done: make(chan struct{}), sync: syncFile}
	go s.syncer()
}

// failed is the error of the sync that failed, nil while none did.
func (w *walState) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// syncer answers the committed groups after the sync that covers them, taking
// every group waiting at once under one sync, until stopSyncer.
func (s *Store) syncer() {
	defer close(s.wal.done)
	var batch []walGroup
	for g := range s.wal.q {
		batch = append(batch[:0], g)
	more:
		for {
			select {
			case g, ok := <-s.wal.q:
				if !ok {
					break more
				}
				batch = append(batch, g)
			default:
				break more
			}
		}
		s.syncBatch(batch)
	}
}

// syncBatch syncs the WAL files of batch's groups (one file but for a connection
// replaced between them) and answers the groups in order.
func (s *Store) syncBatch(batch []walGroup) {
	err := s.wal.failed()
	var synced *os.File
	for _, g := range batch {
		if err != nil || g.wal == nil || g.wal == synced {
			continue
		}
		synced = g.wal
		if serr := s.syncWAL(g.wal); serr != nil {
			err = fmt.Errorf("%w: %w", ErrSyncFailed, serr)
			s.wal.mu.Lock()
			s.wal.err = err
			s.wal.mu.Unlock()
			s.noteWrite(err)
		}
	}
	for _, g := range batch {
		for _, r := range g.reqs {
			r.done <- writeResult{err: err}
		}
		if g.done != nil {
			close(g.done)
		}
	}
}

// syncWAL makes f durable, after checking that it still is the WAL file the
// database uses (SQLite deletes the file only when its last connection closes, and
// the writer's connection stays open while it has groups waiting here).
func (s *Store) syncWAL(f *os.File) error {
	if err := s.wal.sync(f); err != nil {
		return err
	}
	have, err := f.Stat()
	if err != nil {
		return err
	}
	want, err := os.Stat(s.path + "-wal")
	if err != nil {
		return err
	}
	if !os.SameFile(have, want) {
		return fmt.Errorf("%s was replaced", s.path+"-wal")
	}
	return nil
}

// walSynced returns once every group committed so far has been answered (the
// writer, before it lets its connection go).
func (s *Store) walSynced() {
	if s.wal == nil {
		return
	}
	done := make(chan struct{})
	s.wal.q <- walGroup{done: done}
	<-done
}

// stopSyncer answers every group still waiting for its sync and stops the
// syncer (the writer, on Close).
func (s *Store) stopSyncer() {
	if s.wal == nil {
		return
	}
	close(s.wal.q)
	<-s.wal.done
}

// openWAL opens the WAL file of the writer's connection, inside the connection's
// first transaction (SQLite has opened the file by then, and does not delete it
// while the connection is open).
func (s *Store) openWAL() (*os.File, error) {
	f, err := os.Open(s.path + "-wal")
	if err != nil {
		return nil, fmt.Errorf("open the WAL file: %w", err)
	}
	return f, nil
}
