package store

import (
	"context"
	"errors"
	"fmt"
)

// Group commit. Every write transaction of the store (Update) is handed to one
// writer goroutine, which runs the transactions waiting for it together in one
// BEGIN IMMEDIATE … COMMIT (PostgreSQL: BEGIN; SELECT pg_advisory_xact_lock(K); …
// COMMIT, so that the groups of several servers run one at a time), each inside a
// savepoint of its own, and answers each
// caller only after that COMMIT is durable: on PostgreSQL when COMMIT returned; on
// SQLite when the syncer (walsync.go) has synced the WAL file that holds it, while
// the writer already runs the next group. An Update that returns nil is on disk. A
// transaction whose function fails is rolled back to its savepoint and leaves
// nothing, exactly as its own transaction did; the others of the group commit. One
// commit (one WAL append and sync, one pass over the shared b-tree pages) then
// serves a burst of hellos instead of one commit each.

// maxGroup bounds how many transactions one commit takes, so the first of a long
// stream of callers is not held behind all the others.
const maxGroup = 256

// writeReq is one Update waiting for the writer.
type writeReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan writeResult
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
// same isolation as its own transaction would give it: it runs alone, inside a
// savepoint, after the functions before it in the group; what it wrote is undone
// when it returns an error. Statements inside fn run to completion even if ctx is
// cancelled meanwhile (an interrupted write would roll back the whole group);
// an Update whose ctx ends before its turn runs nothing and returns ctx's error.
// A panic in fn rolls its savepoint back and is raised again in the caller.
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
		w, err := newWconn(ctx, s.DB, s.dialect)
		if err != nil {
			return nil, err
		}
		if s.wal != nil {
			// Its COMMIT does not sync: the syncer does, before the answers
			// (walsync.go).
			if _, err := w.conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
				w.discard()
				return nil, classify(err)
			}
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
// transaction, commits it and answers them all.
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
	w, err := s.begin(ctx)
	if err != nil {
		err = classify(err)
		s.noteWrite(err)
		first.done <- writeResult{err: fmt.Errorf("begin: %w", err)}
		return
	}
	var ran []*writeReq // functions that returned nil: they commit or fail together
	var later laterRows // their history rows, written just before COMMIT (later.go)
	var shared groupReads
	answer := func(r *writeReq, res writeResult) { r.done <- res }
	next, n := first, 0
	for next != nil {
		res, lost := s.runOne(ctx, w, next, &later, &shared)
		n++
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
			return
		}
		if res.err == nil && res.panicked == nil {
			ran = append(ran, next)
		} else {
			answer(next, res)
		}
		next = nil
		if n < maxGroup {
			select {
			case next = <-s.queue:
			default:
			}
		}
	}
	if err = later.write(ctx, w); err != nil {
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
		answer(r, writeResult{err: err})
	}
}

// runOne runs r's function inside a savepoint of the group's transaction and
// rolls the savepoint back if it fails (and forgets what shared keeps, which it
// may have counted); if it succeeds, the history rows it left for the commit join
// later. lost is non-nil when the savepoint cannot be rolled back or released:
// the transaction itself is gone.
func (s *Store) runOne(ctx context.Context, w *wconn, r *writeReq, later *laterRows, shared *groupReads) (res writeResult, lost error) {
	if err := r.ctx.Err(); err != nil {
		return writeResult{err: err}, nil
	}
	if _, err := w.ExecContext(ctx, `SAVEPOINT w`); err != nil {
		return writeResult{err: fmt.Errorf("savepoint: %w", err)}, err
	}
	t := &Tx{tx: w, d: s.dialect, Now: s.now().UTC(), g: shared}
	func() {
		defer func() {
			if p := recover(); p != nil {
				res.panicked = p
			}
		}()
		res.err = r.fn(t)
	}()
	if res.err != nil || res.panicked != nil {
		shared.forget()
		if res.err != nil {
			s.noteWrite(res.err)
		}
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
	if res.err == nil && res.panicked == nil {
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
		res, lost := s.runOne(ctx, w, (*reqs)[i], &later, &shared)
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
