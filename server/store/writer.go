package store

import (
	"context"
	"errors"
	"fmt"
)

// Group commit. Every write transaction of the store (Update) is handed to one
// writer goroutine, which runs the transactions waiting for it together in one
// BEGIN IMMEDIATE … COMMIT (PostgreSQL: BEGIN; SELECT pg_advisory_xact_lock(K); …
// COMMIT, so that the groups of several servers run one at a time) and answers each
// caller only after that COMMIT is durable: on PostgreSQL when COMMIT returned; on
// SQLite when the syncer (walsync.go) has synced the WAL file that holds it, while
// the writer already runs the next group. An Update that returns nil is on disk. A
// transaction whose function fails leaves nothing, exactly as its own transaction
// did; the others of the group commit. One commit (one WAL append and sync, one pass
// over the shared b-tree pages) then serves a burst of hellos instead of one commit
// each.
//
// How a failing function leaves nothing: on PostgreSQL each function runs inside a
// savepoint of its own, rolled back when it fails (PostgreSQL aborts the whole
// transaction on any statement's error, even one the function catches, so the
// savepoint is needed for every function there). On SQLite a group first runs
// without savepoints: a SAVEPOINT and RELEASE per function cost two statements, and
// inside a savepoint SQLite copies every page a function first writes into the
// savepoint's journal. A statement that fails there is undone by SQLite alone (its
// statement journal), so a function that catches a statement's error goes on as it
// would inside a savepoint. When a function fails (returns an error or panics), or
// the transaction ended under it (writerConn.ended counts that), the
// writer rolls back the whole transaction, answers that function with its failure
// (it ran once, on the same state it would run on again), and runs the group again
// the savepoint way, in a new transaction: the functions before it run a second
// time. Failures are rare on the usual path, so most groups run each function once
// and no savepoint; a caller that makes its function fail on purpose costs its
// group a second run (a delay), never another caller's answer.

// maxGroup bounds how many transactions one commit takes, so the first of a long
// stream of callers is not held behind all the others.
const maxGroup = 256

// writeReq is one Update waiting for the writer.
type writeReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan writeResult
	// ran: fn has run once already (in a group's first run, or in an attempt of a
	// serializable group); if the group runs again, fn runs again whatever its
	// ctx says now: its turn came.
	ran bool
}

// writeResult is an Update's outcome: its error, or the value its function panicked
// with (re-raised on the caller's goroutine).
type writeResult struct {
	err      error
	panicked any
}

// Update runs fn in a write transaction and returns once that transaction is
// committed (nil) or rolled back (fn's error, or the database's). fn may share
// its BEGIN … COMMIT with other callers' functions (group commit), but sees the
// same isolation as its own transaction would give it: it runs alone, after the
// functions before it in the group; what it wrote is undone when it returns an
// error. Statements inside fn run to completion even if ctx is cancelled meanwhile
// (an interrupted write would roll back the whole group); an Update whose ctx ends
// before its turn runs nothing and returns ctx's error. A panic in fn undoes what
// it wrote and is raised again in the caller.
//
// fn may run more than once for one Update: when another function of its group
// fails, or the database rolls the transaction back under it (a serializable
// group's conflict), the group runs again in a new transaction, fn with it (once its
// turn came, whatever ctx says then). Only the last run's writes are committed, and
// only its return value answers the caller. So fn must hand out of the transaction
// only what its last run sets (assign its results, do not append to them) and keep
// whatever it does outside the database safe to do twice. What the store keeps for
// a Tx (its history rows at the commit, the reads its group shares) starts afresh
// with each run.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan writeResult, 1)}
	select {
	case s.queue <- r:
	case <-s.quit:
		return ErrClosed
	}
	var res writeResult
	select {
	case res = <-r.done:
	case <-s.writerDone:
		select {
		case res = <-r.done: // answered just before the writer stopped
		default:
			return ErrClosed
		}
	}
	if res.panicked != nil {
		panic(res.panicked)
	}
	return res.err
}

// Queued is how many Updates wait for the writer now, behind the group it runs:
// they join its next group (up to maxGroup). Tests use it to gather a group.
func (s *Store) Queued() int { return len(s.queue) }

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("store closed")

// writer runs the groups until Close.
func (s *Store) writer() {
	defer close(s.writerDone)
	defer s.closeConn()
	defer s.stopSyncer() // first: the groups committed are answered before the connection goes
	for {
		select {
		case r := <-s.queue:
			s.group(r)
		case <-s.quit:
			// Callers already queued get an answer rather than a hang.
			for {
				select {
				case r := <-s.queue:
					r.done <- writeResult{err: ErrClosed}
				default:
					return
				}
			}
		}
	}
}

// begin starts a group's transaction on the writer's connection, taking a new
// connection first if the writer holds none: on SQLite BEGIN IMMEDIATE; on
// PostgreSQL BEGIN and the write lock, or BEGIN ISOLATION LEVEL SERIALIZABLE
// (Config.Serializable). On failure nothing is left open.
func (s *Store) begin(ctx context.Context) (*wconn, error) {
	if s.wc == nil {
		w, err := newWconn(ctx, s.DB, s.dialect, s.path)
		if err != nil {
			return nil, err
		}
		s.wc = w
	}
	q := `BEGIN IMMEDIATE`
	if s.dialect == dialectPostgres {
		q = `BEGIN`
		if s.serializable {
			q = `BEGIN ISOLATION LEVEL SERIALIZABLE`
		}
	}
	if _, err := s.wc.ExecContext(ctx, q); err != nil {
		s.abort(ctx)
		return nil, err
	}
	if s.wal != nil && s.wc.wal == nil {
		f, err := s.openWAL()
		if err != nil {
			s.abort(ctx)
			return nil, err
		}
		s.wc.wal = f
	}
	if !s.serializable {
		if err := s.lockForWrite(ctx, s.wc); err != nil {
			s.abort(ctx)
			return nil, err
		}
	}
	return s.wc, nil
}

// commit commits the group's transaction; if COMMIT fails, what is left of the
// transaction is rolled back (abort).
func (s *Store) commit(ctx context.Context) error {
	if _, err := s.wc.ExecContext(ctx, `COMMIT`); err != nil {
		s.abort(ctx)
		return err
	}
	return nil
}

// abort rolls back the group's transaction, or what the database left of it.
// When even ROLLBACK fails (there is no transaction any more, or no connection),
// the writer's connection is discarded, whatever state it is in, and the next
// group takes a new one.
func (s *Store) abort(ctx context.Context) {
	if _, err := s.wc.ExecContext(ctx, `ROLLBACK`); err != nil {
		s.walSynced() // the groups committed on it are answered first
		s.wc.discard()
		s.wc = nil
	}
}

// closeConn gives the writer's connection back to Store.DB (on Close).
func (s *Store) closeConn() {
	if s.wc == nil {
		return
	}
	s.wc.close()
	s.wc = nil
}

// group runs first and then every Update already waiting (up to maxGroup) in one
// transaction, commits it and answers them all. On SQLite the group first runs
// without savepoints; if that run must be undone, it runs again with them (see the
// top of this file).
func (s *Store) group(first *writeReq) {
	if s.serializable {
		s.groupSerializable(first)
		return
	}
	if s.wal != nil {
		if err := s.wal.failed(); err != nil {
			first.done <- writeResult{err: err}
			return
		}
	}
	ctx := context.Background()
	reqs, taken := []*writeReq{first}, 1
	savepoints := s.dialect == dialectPostgres
	for {
		again := s.tryGroup(ctx, &reqs, &taken, savepoints)
		if !again {
			return
		}
		savepoints = true
	}
}

// tryGroup runs *reqs and then the Updates waiting (while *taken, the Updates the
// group has taken from the queue, is under maxGroup; those join *reqs) in one
// transaction, commits it and answers each caller. Without savepoints, the first
// function that fails or loses the transaction ends the run: the transaction is
// rolled back, that function's caller answered with its failure (unless the
// function returned nil: then it runs again), *reqs becomes the Updates still to
// answer, in their order, and again is true: run them again with savepoints.
func (s *Store) tryGroup(ctx context.Context, reqs *[]*writeReq, taken *int, savepoints bool) (again bool) {
	answer := func(r *writeReq, res writeResult) { r.done <- res }
	w, err := s.begin(ctx)
	if err != nil {
		err = classify(err)
		s.noteWrite(err)
		for _, r := range *reqs {
			answer(r, writeResult{err: fmt.Errorf("begin: %w", err)})
		}
		return false
	}
	var ran []*writeReq // functions that returned nil: they commit or fail together
	var later laterRows // their history rows, written just before COMMIT (later.go)
	var shared groupReads
	for i := 0; ; i++ {
		if i == len(*reqs) {
			if *taken == maxGroup {
				break
			}
			select {
			case r := <-s.queue:
				*reqs = append(*reqs, r)
				*taken++
			default:
			}
			if i == len(*reqs) {
				break
			}
		}
		next := (*reqs)[i]
		res, lost := s.runOne(ctx, w, next, &later, &shared, savepoints)
		if lost != nil && !savepoints {
			// Undo the run, and run what is left again with savepoints.
			s.abort(ctx)
			rest := ran
			if res.err != nil || res.panicked != nil {
				answer(next, res)
			} else {
				rest = append(rest, next)
			}
			*reqs = append(rest, (*reqs)[i+1:]...)
			return true
		}
		if lost != nil {
			// The database rolled the whole transaction back (a storage failure,
			// a lost connection): the functions before this one lost their writes
			// too.
			s.abort(ctx)
			lost = classify(lost)
			s.noteWrite(lost)
			for _, r := range ran {
				answer(r, writeResult{err: fmt.Errorf("transaction rolled back: %w", lost)})
			}
			answer(next, res)
			// Those taken and not yet run in this transaction run in the next.
			*reqs = (*reqs)[i+1:]
			return len(*reqs) > 0
		}
		if res.err == nil && res.panicked == nil {
			ran = append(ran, next)
		} else {
			answer(next, res)
		}
	}
	s.commitGroup(ctx, w, ran, &later)
	return false
}

// commitGroup writes a group's history rows and commits its transaction, then
// answers the callers whose functions ran: on SQLite through the syncer, after
// the sync (walsync.go); on PostgreSQL, or with the commit's error, at once.
func (s *Store) commitGroup(ctx context.Context, w *wconn, ran []*writeReq, later *laterRows) {
	err := later.write(ctx, w)
	if err != nil {
		s.abort(ctx)
		err = fmt.Errorf("transaction rolled back: %w", classify(err))
	} else if err = s.commit(ctx); err != nil {
		err = fmt.Errorf("commit: %w", classify(err))
	}
	if len(ran) > 0 || err != nil {
		s.noteWrite(err)
	}
	if err == nil && s.wal != nil {
		if len(ran) > 0 {
			s.wal.q <- walGroup{reqs: ran, wal: w.wal} // answered after the sync (walsync.go)
		}
		return
	}
	for _, r := range ran {
		r.done <- writeResult{err: err}
	}
}

// errUndone is runOne's lost without savepoints: the function failed, or the
// transaction was rolled back under it, and the run has to be undone whole.
var errUndone = errors.New("the group's run is undone")

// runOne runs r's function in the group's transaction. With savepoints, it runs
// inside one, rolled back if the function fails (which also forgets what shared
// keeps, which it may have counted); lost is non-nil when the savepoint cannot be
// rolled back or released: the transaction itself is gone. Without savepoints
// (SQLite's first run of a group), lost is errUndone when the function failed or
// the transaction ended while it ran (writerConn.ended): the caller undoes the
// whole run. If the function succeeds, the history rows it left for the commit
// join later.
func (s *Store) runOne(ctx context.Context, w *wconn, r *writeReq, later *laterRows, shared *groupReads, savepoint bool) (res writeResult, lost error) {
	if err := r.ctx.Err(); err != nil && !r.ran {
		return writeResult{err: err}, nil
	}
	r.ran = true
	if savepoint {
		if _, err := w.ExecContext(ctx, `SAVEPOINT w`); err != nil {
			return writeResult{err: fmt.Errorf("savepoint: %w", err)}, err
		}
	}
	ended := w.ended()
	t := &Tx{tx: w, d: s.dialect, Now: s.now().UTC(), g: shared}
	func() {
		defer func() {
			if p := recover(); p != nil {
				res.panicked = p
			}
		}()
		res.err = r.fn(t)
	}()
	failed := res.err != nil || res.panicked != nil
	if res.err != nil {
		s.noteWrite(res.err)
	}
	if !savepoint {
		if failed || w.ended() != ended {
			return res, errUndone
		}
		later.add(t.later)
		return res, nil
	}
	if failed {
		shared.forget()
		if _, err := w.ExecContext(ctx, `ROLLBACK TO w`); err != nil {
			if res.err == nil {
				res.err = fmt.Errorf("rollback: %w", err)
			}
			return res, err
		}
	}
	if _, err := w.ExecContext(ctx, `RELEASE w`); err != nil {
		if res.err == nil {
			res.err = fmt.Errorf("release: %w", err)
		}
		return res, err
	}
	if !failed {
		later.add(t.later)
	}
	return res, nil
}

// maxSerialAttempts bounds how often groupSerializable runs one group.
const maxSerialAttempts = 20

// groupSerializable is group for Config.Serializable (PostgreSQL only, kept to
// measure the alternative to the write lock; docs/architecture.md): no advisory
// lock, the group runs in a SERIALIZABLE transaction, and when PostgreSQL aborts
// it for a conflict with another server's writes (SQLSTATE 40001 or 40P01) every
// function of the group runs again in a new transaction. So that a function runs
// again only while its caller has not been answered, the callers are answered
// after the group's last attempt.
func (s *Store) groupSerializable(first *writeReq) {
	ctx := context.Background()
	reqs := []*writeReq{first}
	var results []writeResult
	var err error
	for attempt := 1; ; attempt++ {
		results, err = s.trySerializable(ctx, &reqs, attempt == 1)
		if !isSerializationFailure(err) || attempt == maxSerialAttempts {
			break
		}
	}
	if err != nil {
		err = classify(err)
		s.noteWrite(err)
	} else {
		s.noteWrite(nil)
	}
	for i, r := range reqs {
		res := writeResult{err: err}
		if i < len(results) && (results[i].err != nil || results[i].panicked != nil) {
			res = results[i]
		}
		r.done <- res
	}
}

// trySerializable runs *reqs in one SERIALIZABLE transaction and commits it; on the
// first attempt (more) it first takes the Updates already waiting into *reqs. It
// returns each function's result and the transaction's error: a serialization
// failure (from a function's statement or from COMMIT) means run them all again.
func (s *Store) trySerializable(ctx context.Context, reqs *[]*writeReq, more bool) ([]writeResult, error) {
	w, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	var results []writeResult
	var later laterRows
	var shared groupReads // each attempt reads afresh
	for i := 0; i < len(*reqs); i++ {
		res, lost := s.runOne(ctx, w, (*reqs)[i], &later, &shared, true)
		results = append(results, res)
		if lost != nil || isSerializationFailure(res.err) {
			s.abort(ctx)
			if lost == nil {
				lost = res.err
			}
			return results, fmt.Errorf("transaction rolled back: %w", lost)
		}
		if more && i == len(*reqs)-1 && len(*reqs) < maxGroup {
			select {
			case r := <-s.queue:
				*reqs = append(*reqs, r)
			default:
			}
		}
	}
	if err := later.write(ctx, w); err != nil {
		s.abort(ctx)
		return results, fmt.Errorf("transaction rolled back: %w", err)
	}
	if err := s.commit(ctx); err != nil {
		return results, fmt.Errorf("commit: %w", err)
	}
	return results, nil
}
