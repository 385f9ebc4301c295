package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// holdWriter runs an Update that waits, inside the writer, until want more
// Updates are queued behind it; the ones queued then join its group. It returns
// once the holding Update is running, and a wait for its result. Its function
// waits only in its first run (a group runs again when one of its functions
// fails: writer.go).
func holdWriter(t *testing.T, s *Store, want int, fn func(*Tx) error) (wait func() error) {
	t.Helper()
	running := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		first := true
		done <- s.Update(context.Background(), func(tx *Tx) error {
			if first {
				first = false
				close(running)
				for len(s.queue) < want {
					runtime.Gosched()
				}
			}
			return fn(tx)
		})
	}()
	<-running
	return func() error { return <-done }
}

// updatesInOneGroup runs fn(0) … fn(n-1) as Updates of their own, all in one group
// and in that order (holdWriter holds the writer until every one is queued, each
// queued after the one before; once the last is queued the writer may take them at
// once), and returns their errors.
func updatesInOneGroup(t *testing.T, s *Store, n int, fn func(k int) func(*Tx) error) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	wait := holdWriter(t, s, n, func(*Tx) error { return nil })
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = s.Update(context.Background(), fn(k))
		}()
		for k < n-1 && s.Queued() < k+1 {
			runtime.Gosched()
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return errs
}

// TestGroupCommitIsolation: Updates committed together in one group keep what
// each would have as its own transaction — a failing one leaves nothing, its
// neighbours keep everything — and each successful caller finds its write
// through the reader pool as soon as Update returns (it is committed before it is
// acknowledged). A panic in one is raised in its caller and undone.
func TestGroupCommitIsolation(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		boom := errors.New("boom")
		const n = 60
		errs := make([]error, n)
		var panicked any
		var wg sync.WaitGroup
		wait := holdWriter(t, s, n+1, func(tx *Tx) error { return tx.SeeBoard(ctx, Board{Serial: "00000000000000ff"}) })
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				serial := fmt.Sprintf("%016x", i)
				errs[i] = s.Update(ctx, func(tx *Tx) error {
					if err := tx.SeeBoard(ctx, Board{Serial: serial}); err != nil {
						return err
					}
					if i%3 == 1 {
						return fmt.Errorf("board %d: %w", i, boom)
					}
					return nil
				})
				if errs[i] == nil {
					if _, err := s.Board(ctx, serial); err != nil {
						errs[i] = fmt.Errorf("acknowledged board %s not readable: %w", serial, err)
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panicked = recover() }()
			s.Update(ctx, func(tx *Tx) error {
				tx.SeeBoard(ctx, Board{Serial: "00000000000000aa"})
				panic("in a write")
			})
		}()
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if panicked != "in a write" {
			t.Errorf("caller recovered %v, want the function's panic", panicked)
		}
		for i, err := range errs {
			_, rerr := s.Board(ctx, fmt.Sprintf("%016x", i))
			switch {
			case i%3 == 1 && !errors.Is(err, boom):
				t.Errorf("update %d: %v, want %v", i, err, boom)
			case i%3 == 1 && !errors.Is(rerr, ErrNotFound):
				t.Errorf("failed update %d left its board: %v", i, rerr)
			case i%3 != 1 && (err != nil || rerr != nil):
				t.Errorf("update %d: %v; board: %v", i, err, rerr)
			}
		}
		for _, serial := range []string{"00000000000000aa"} {
			if _, err := s.Board(ctx, serial); !errors.Is(err, ErrNotFound) {
				t.Errorf("panicking update left board %s: %v", serial, err)
			}
		}
		if _, err := s.Board(ctx, "00000000000000ff"); err != nil {
			t.Errorf("holding update's board: %v", err)
		}
	})
}

// TestGroupCommitLostTransaction: when the database rolls the whole transaction
// back under a group (SQLite does on a storage failure), no caller is acknowledged
// a write that is gone, and no function writes outside a transaction.
//
// A function that loses the transaction and returns nil (it swallowed the error):
// every caller of the group up to it gets an error, nothing of theirs is written,
// and the function queued after it runs in a new transaction and is committed once
// (on SQLite the writer's connection counts the transactions that end, which
// tells the group's run without savepoints that its transaction is gone; without
// that the function after ran in autocommit mode). A
// function that loses it and fails: on PostgreSQL (savepoints) every caller of the
// group fails; on SQLite the group runs again without the failed function, in a
// new transaction, and the function before it is committed.
func TestGroupCommitLostTransaction(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		lose := func(tx *Tx) error {
			_, err := tx.tx.ExecContext(ctx, `ROLLBACK`)
			return err
		}
		see := func(serial string) func(*Tx) error {
			return func(tx *Tx) error { return tx.SeeBoard(ctx, Board{Serial: serial}) }
		}
		stored := func(serial string) bool {
			t.Helper()
			_, err := s.Board(ctx, serial)
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}

		wait := holdWriter(t, s, 2, see("0000000000000001"))
		lost, after := make(chan error, 1), make(chan error, 1)
		go func() { lost <- s.Update(ctx, lose) }()
		for s.Queued() < 1 {
			runtime.Gosched()
		}
		go func() { after <- s.Update(ctx, see("0000000000000003")) }()
		if err := wait(); err == nil {
			t.Error("update of the lost group acknowledged")
		}
		if err := <-lost; err == nil {
			t.Error("update that lost the transaction and returned nil acknowledged")
		}
		if err := <-after; err != nil {
			t.Errorf("update queued after the lost one: %v", err)
		}
		if stored("0000000000000001") || !stored("0000000000000003") {
			t.Errorf("boards 1 and 3 stored: %v, %v; want false, true", stored("0000000000000001"), stored("0000000000000003"))
		}

		gone := errors.New("transaction gone")
		wait = holdWriter(t, s, 1, see("0000000000000004"))
		err := s.Update(ctx, func(tx *Tx) error {
			if err := lose(tx); err != nil {
				return err
			}
			return gone
		})
		if !errors.Is(err, gone) {
			t.Errorf("update that lost the transaction: %v, want %v", err, gone)
		}
		err = wait()
		if cfg.URL != "" && (err == nil || stored("0000000000000004")) {
			t.Errorf("PostgreSQL: update of the lost group: %v, board stored %v", err, stored("0000000000000004"))
		}
		if cfg.URL == "" && (err != nil || !stored("0000000000000004")) {
			t.Errorf("SQLite: update of the group run again: %v, board stored %v", err, stored("0000000000000004"))
		}
		if err := s.Update(ctx, see("0000000000000002")); err != nil {
			t.Fatalf("next group: %v", err)
		}
		if !stored("0000000000000002") {
			t.Error("board of the next group not stored")
		}
	})
}

// TestGroupRunAgain: a group whose functions include one that fails and one that
// panics, in the middle, commits each of the others exactly once and nothing of
// those two. On SQLite the group first runs without savepoints and, once a function
// fails, runs again with them in a new transaction (writer.go): the functions before
// the failed one run twice (their history rows and results are still the last
// run's, not doubled), the failed one is answered from its only run, and a function
// whose context was cancelled between the two runs still runs and commits (its turn
// came), while one cancelled before its turn runs nothing. On PostgreSQL every
// function runs once, in its savepoint.
func TestGroupRunAgain(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		boom := errors.New("boom")
		runs := map[string]int{} // only the writer goroutine writes it, while the group runs
		result := map[string]string{}
		step := func(serial string, then func() error) func(*Tx) error {
			return func(tx *Tx) error {
				runs[serial]++
				if err := tx.SeeBoard(ctx, Board{Serial: serial}); err != nil {
					return err
				}
				tx.AddBoardEventAtCommit(BoardEvent{Serial: serial, Kind: "test", Detail: "run"})
				result[serial] = "ran " + strconv.Itoa(runs[serial])
				return then()
			}
		}
		ok := func() error { return nil }
		cancelledCtx, cancelled := context.WithCancel(ctx) // cancelled in its own first run
		beforeCtx, cancelBefore := context.WithCancel(ctx) // cancelled before its turn
		type call struct {
			serial string
			ctx    context.Context
			fn     func(*Tx) error
		}
		calls := []call{
			{"00000000000000a1", cancelledCtx, step("00000000000000a1", func() error { cancelled(); return nil })},
			{"00000000000000a2", ctx, step("00000000000000a2", func() error { cancelBefore(); return boom })},
			{"00000000000000a3", ctx, step("00000000000000a3", func() error { panic("in a write") })},
			{"00000000000000a4", beforeCtx, step("00000000000000a4", ok)},
			{"00000000000000a5", ctx, step("00000000000000a5", ok)},
		}
		errs := make([]error, len(calls))
		panics := make([]any, len(calls))
		var wg sync.WaitGroup
		wait := holdWriter(t, s, len(calls), step("00000000000000a0", ok))
		for i, c := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { panics[i] = recover() }()
				errs[i] = s.Update(c.ctx, c.fn)
			}()
			// Each queued after the one before; once the last is queued the
			// writer may take them all at once.
			for i < len(calls)-1 && s.Queued() < i+1 {
				runtime.Gosched()
			}
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		again := 2 // the runs of those before the failed function
		if cfg.URL != "" {
			again = 1
		}
		for _, c := range []struct {
			serial string
			err    error
			panic  any
			runs   int
			stored bool
		}{
			{"00000000000000a0", nil, nil, again, true},
			{"00000000000000a1", nil, nil, again, true},
			{"00000000000000a2", boom, nil, 1, false},
			{"00000000000000a3", nil, "in a write", 1, false},
			{"00000000000000a4", context.Canceled, nil, 0, false},
			{"00000000000000a5", nil, nil, 1, true},
		} {
			i := slices.IndexFunc(calls, func(k call) bool { return k.serial == c.serial })
			if i >= 0 && (!errors.Is(errs[i], c.err) || (c.err == nil && errs[i] != nil) || panics[i] != c.panic) {
				t.Errorf("%s: %v, panic %v; want %v, %v", c.serial, errs[i], panics[i], c.err, c.panic)
			}
			if runs[c.serial] != c.runs {
				t.Errorf("%s ran %d times, want %d", c.serial, runs[c.serial], c.runs)
			}
			if c.runs > 0 && result[c.serial] != "ran "+strconv.Itoa(c.runs) {
				t.Errorf("%s: result %q of another run than its last", c.serial, result[c.serial])
			}
			evs, err := s.BoardEvents(ctx, c.serial, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			_, berr := s.Board(ctx, c.serial)
			want := 0
			if c.stored {
				want = 1
			}
			if len(evs) != want || (berr == nil) != c.stored {
				t.Errorf("%s: %d history rows, board: %v; want %d rows, stored %v", c.serial, len(evs), berr, want, c.stored)
			}
		}
	})
}

// TestCaughtConflictWithoutSavepoint (SQLite): a function that catches a
// statement's UNIQUE conflict and goes on behaves in the group's run without
// savepoints as it would inside one: SQLite undoes the failed statement alone and
// keeps the transaction, so the group is not run again (each function runs once),
// the function's writes before and after the conflict are committed, and so are
// its neighbours'. (On PostgreSQL a failed statement aborts the transaction, which
// is why its groups keep a savepoint per function.)
func TestCaughtConflictWithoutSavepoint(t *testing.T) {
	ctx := context.Background()
	s := openCfg(t, Config{Dir: t.TempDir()})
	runs := map[string]int{}
	insert := func(tx *Tx, code string) error {
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO venues (code, name, created_at) VALUES (?, '', ?)`, code, FormatTime(tx.Now))
		return err
	}
	wait := holdWriter(t, s, 2, func(tx *Tx) error { runs["holder"]++; return insert(tx, "HOLD") })
	caught, after := make(chan error, 1), make(chan error, 1)
	go func() {
		caught <- s.Update(ctx, func(tx *Tx) error {
			runs["caught"]++
			if err := insert(tx, "VEN1"); err != nil {
				return err
			}
			if err := insert(tx, "VEN1"); !isUnique(err) {
				return fmt.Errorf("second insert: %v, want a UNIQUE conflict", err)
			}
			return insert(tx, "VEN2")
		})
	}()
	for s.Queued() < 1 {
		runtime.Gosched()
	}
	go func() { after <- s.Update(ctx, func(tx *Tx) error { runs["after"]++; return insert(tx, "AFTR") }) }()
	for _, err := range []error{wait(), <-caught, <-after} {
		if err != nil {
			t.Error(err)
		}
	}
	if runs["holder"] != 1 || runs["caught"] != 1 || runs["after"] != 1 {
		t.Errorf("runs %v, want each function once", runs)
	}
	var codes []string
	rows, err := s.DB.QueryContext(ctx, `SELECT code FROM venues ORDER BY code`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		codes = append(codes, c)
	}
	if d := cmp.Diff([]string{"AFTR", "HOLD", "VEN1", "VEN2"}, codes); d != "" || rows.Err() != nil {
		t.Errorf("venues (-want +got):\n%s%v", d, rows.Err())
	}
}

// TestUpdateCancelledBeforeItsTurn: an Update whose context ends while it waits
// for the writer runs nothing; one whose context ends while it runs completes (a
// write interrupted mid-statement would roll back its whole group); after Close,
// Update returns ErrClosed.
func TestUpdateCancelledBeforeItsTurn(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		cctx, cancel := context.WithCancel(ctx)
		ran := false
		release := make(chan struct{})
		wait := holdWriter(t, s, 0, func(tx *Tx) error { <-release; return nil })
		res := make(chan error, 1)
		go func() { res <- s.Update(cctx, func(tx *Tx) error { ran = true; return nil }) }()
		for len(s.queue) < 1 {
			runtime.Gosched()
		}
		cancel()
		close(release)
		if err := <-res; !errors.Is(err, context.Canceled) || ran {
			t.Errorf("cancelled waiting update: %v, ran %v", err, ran)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		cctx, cancel = context.WithCancel(ctx)
		err := s.Update(cctx, func(tx *Tx) error {
			cancel()
			return tx.SeeBoard(cctx, Board{Serial: "0000000000000003"})
		})
		if err != nil {
			t.Errorf("update cancelled while it ran: %v", err)
		}
		if _, err := s.Board(ctx, "0000000000000003"); err != nil {
			t.Errorf("its board: %v", err)
		}
		s.Close()
		if err := s.Update(ctx, func(tx *Tx) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("update after Close: %v, want ErrClosed", err)
		}
	})
}

// TestHistoryAtCommit: history rows kept for the commit (AddBoardEventAtCommit, a
// new deployment's first phase) are not visible inside their transaction; they are
// written with the group's commit, in the order the functions ran, after the rows
// the group wrote directly, through INSERTs of 32, 8 and 1 rows (45 rows here),
// each with its own transaction's time; a function that fails leaves none.
func TestHistoryAtCommit(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return at })
		const serial = "00000000000000b1"
		var id int64
		wait := holdWriter(t, s, 2, func(tx *Tx) error {
			for i := range 45 {
				tx.AddBoardEventAtCommit(BoardEvent{Serial: serial, Kind: "k", Detail: strconv.Itoa(i)})
			}
			if _, err := tx.PutVenue(ctx, "CORO", ""); err != nil {
				return err
			}
			if _, err := tx.SaveBoard(ctx, Board{Serial: serial, MAC: "2c:cf:67:00:00:b1"}); err != nil {
				return err
			}
			var err error
			id, err = tx.AddDeployment(ctx, Deployment{Serial: serial, Venue: "CORO", Product: "RXP2", Hostname: "h", Image: "img",
				Phase: "hello"})
			if err != nil {
				return err
			}
			var events int
			if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM board_events`).Scan(&events); err != nil {
				return err
			}
			phases, err := tx.CountPhases(ctx, id)
			if events != 0 || phases != 0 {
				t.Errorf("inside the transaction: %d board events, %d phases, want none yet", events, phases)
			}
			return err
		})
		errs := make(chan error, 2)
		go func() {
			errs <- s.Update(ctx, func(tx *Tx) error {
				tx.AddBoardEventAtCommit(BoardEvent{Serial: serial, Kind: "k", Detail: "failed"})
				return errors.New("fails after keeping a row")
			})
		}()
		go func() {
			errs <- s.Update(ctx, func(tx *Tx) error {
				tx.AddBoardEventAtCommit(BoardEvent{Serial: serial, Kind: "k", Detail: "late"})
				_, err := tx.AddBoardEvent(ctx, BoardEvent{Serial: serial, Kind: "k", Detail: "direct"})
				return err
			})
		}()
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		if e1, e2 := <-errs, <-errs; (e1 == nil) == (e2 == nil) {
			t.Fatalf("want one of the two queued updates to fail: %v, %v", e1, e2)
		}
		events, err := s.BoardEvents(ctx, serial, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"direct"}
		for i := range 45 {
			want = append(want, strconv.Itoa(i))
		}
		want = append(want, "late")
		var got []string
		for _, e := range events {
			got = append(got, e.Detail)
			if e.At != FormatTime(at) || e.Site != DefaultSite || e.Kind != "k" {
				t.Errorf("event %q: at %q site %q kind %q, want %q %q %q", e.Detail, e.At, e.Site, e.Kind, FormatTime(at), DefaultSite, "k")
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("board history (-want +got):\n%s", diff)
		}
		phases, err := s.Phases(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]Phase{{Phase: "hello", At: FormatTime(at)}}, phases); diff != "" {
			t.Errorf("phases (-want +got):\n%s", diff)
		}
	})
}

// TestHistoryAtCommitFails: when the rows kept for the commit cannot be written (a
// phase of a deployment that does not exist breaks the foreign key), the whole
// group is rolled back and every caller of it gets the error: none is told its
// write is done.
func TestHistoryAtCommitFails(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		wait := holdWriter(t, s, 1, func(tx *Tx) error {
			tx.AddBoardEventAtCommit(BoardEvent{Serial: "00000000000000b2", Kind: "k"})
			_, err := tx.SaveBoard(ctx, Board{Serial: "00000000000000b2"})
			return err
		})
		err := s.Update(ctx, func(tx *Tx) error {
			tx.addPhaseAtCommit(987654, "hello")
			return nil
		})
		if err == nil {
			t.Error("update with an impossible history row: nil error")
		}
		if err := wait(); err == nil {
			t.Error("the other update of the group: nil error, want the group's")
		}
		if _, err := s.Board(ctx, "00000000000000b2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("board of the rolled-back group: %v, want ErrNotFound", err)
		}
		if events, err := s.BoardEvents(ctx, "00000000000000b2", "", 0); err != nil || len(events) != 0 {
			t.Errorf("board history of the rolled-back group: %v %v, want none", events, err)
		}
		if err := s.Update(ctx, func(tx *Tx) error {
			tx.AddBoardEventAtCommit(BoardEvent{Serial: "00000000000000b2", Kind: "k"})
			return nil
		}); err != nil {
			t.Errorf("the next group: %v", err)
		}
	})
}
