package store

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
)

// openSync opens a store in dir, closed at the test's end, whose WAL sync is
// replaced by one that reports each call on entered and returns what release
// gives it (nil once the test has ended); it checks that the file is the
// database's WAL file.
func openSync(t *testing.T, dir string) (s *Store, entered chan struct{}, release chan error) {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	entered, release = make(chan struct{}, 16), make(chan error)
	ended := make(chan struct{})
	t.Cleanup(func() { close(ended) })
	s.wal.sync = func(f *os.File) error {
		have, err := f.Stat()
		if err != nil {
			return err
		}
		want, err := os.Stat(s.Path() + "-wal")
		if err != nil {
			return err
		}
		if !os.SameFile(have, want) {
			t.Errorf("synced %s, not the WAL file", f.Name())
		}
		entered <- struct{}{}
		select {
		case err := <-release: // nil once closed
			return err
		case <-ended:
			return nil
		}
	}
	return s, entered, release
}

// seeBoard is an Update that stores a board, run in a goroutine; its result
// comes on the channel.
func seeBoard(s *Store, serial string) chan error {
	done := make(chan error, 1)
	go func() {
		done <- s.Update(context.Background(), func(tx *Tx) error {
			return tx.SeeBoard(context.Background(), Board{Serial: serial})
		})
	}()
	return done
}

// TestUpdateAnsweredAfterWALSync: on SQLite an Update returns only after the sync
// of the WAL file that covers its commit has returned. While that sync is held,
// the commit is visible to readers, the writer goes on (a second Update commits,
// visible too, and is held by the sync behind), and both are answered once the
// syncs return.
func TestUpdateAnsweredAfterWALSync(t *testing.T) {
	ctx := context.Background()
	s, entered, release := openSync(t, t.TempDir())
	first := seeBoard(s, "0000000000000001")
	<-entered
	select {
	case err := <-first:
		t.Fatalf("Update returned (%v) while the sync of its commit had not", err)
	default:
	}
	if _, err := s.Board(ctx, "0000000000000001"); err != nil {
		t.Errorf("first commit, not yet synced, read back: %v", err)
	}
	second := seeBoard(s, "0000000000000002")
	for {
		if _, err := s.Board(ctx, "0000000000000002"); err == nil {
			break
		} else if !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		select {
		case err := <-second:
			t.Fatalf("second Update returned (%v) before it was visible", err)
		default:
		}
	}
	select {
	case err := <-first:
		t.Fatalf("Update returned (%v) while the sync of its commit had not", err)
	case err := <-second:
		t.Fatalf("second Update returned (%v) while the first sync had not", err)
	default:
	}
	release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-entered // the second commit's own sync
	select {
	case err := <-second:
		t.Fatalf("second Update returned (%v) before the sync of its commit", err)
	default:
	}
	release <- nil
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if werr, _ := s.WriteError(); werr != nil {
		t.Errorf("WriteError after synced writes: %v", werr)
	}
}

// TestWALSyncFailureStopsWrites: a failed sync of the WAL fails every Update it
// covered and every one committed behind it, with ErrSyncFailed and the sync's
// error; WriteError reports it; and the store takes no write after it (the
// function of a later Update does not run), since what is on disk is unknown.
func TestWALSyncFailureStopsWrites(t *testing.T) {
	ctx := context.Background()
	s, entered, release := openSync(t, t.TempDir())
	ok := seeBoard(s, "0000000000000009")
	<-entered
	release <- nil
	if err := <-ok; err != nil {
		t.Fatal(err)
	}
	first := seeBoard(s, "0000000000000001")
	<-entered
	second := seeBoard(s, "0000000000000002")
	for {
		if _, err := s.Board(ctx, "0000000000000002"); err == nil {
			break
		}
	}
	release <- syscall.EIO
	close(release) // any sync after it returns nil
	for i, done := range []chan error{first, second} {
		if err := <-done; !errors.Is(err, ErrSyncFailed) || !errors.Is(err, syscall.EIO) {
			t.Errorf("Update %d covered by the failed sync: %v, want ErrSyncFailed and EIO", i+1, err)
		}
	}
	werr, at := s.WriteError()
	if !errors.Is(werr, ErrSyncFailed) || at.IsZero() {
		t.Errorf("WriteError: %v at %v", werr, at)
	}
	// The writer notes its commit's success after the commit, and so may note it
	// after the syncer noted the failed sync that was to cover it (a CI run did).
	s.noteWrite(nil)
	if werr, _ := s.WriteError(); !errors.Is(werr, ErrSyncFailed) {
		t.Errorf("WriteError after a success noted late: %v, want ErrSyncFailed", werr)
	}
	ran := false
	err := s.Update(ctx, func(tx *Tx) error { ran = true; return nil })
	if !errors.Is(err, ErrSyncFailed) || ran {
		t.Errorf("Update after the failed sync: %v (function ran: %v)", err, ran)
	}
	select {
	case <-entered:
		t.Error("a sync after the failed one")
	default:
	}
}

// TestCloseAnswersAfterWALSync: Close waits for the sync of the groups committed
// before it, and their callers get that sync's answer, not ErrClosed; what they
// wrote is there when the database is opened again.
func TestCloseAnswersAfterWALSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, entered, release := openSync(t, dir)
	done := seeBoard(s, "0000000000000001")
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	<-s.quit
	release <- nil
	if err := <-done; err != nil {
		t.Errorf("Update held by the sync when Close began: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Board(ctx, "0000000000000001"); err != nil {
		t.Errorf("board after reopening: %v", err)
	}
}
