package pgrelay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Channel is the NOTIFY channel on which a relay announces new events (the payload
// is the new highest seq, for people watching with psql; relays read the table).
const Channel = "rpi_deploy_events"

// The advisory lock that numbers events: the two-key form, whose keys never meet the
// one-key locks (the store's writer uses one of those). lockObject is the events
// table's migration.
const (
	lockClass  = 0x72706964 // "rpid"
	lockObject = 34
)

// Defaults of Options.
const (
	DefaultKeep       = 100_000
	DefaultMaxPending = 50_000
	DefaultPoll       = 5 * time.Second
)

// Reset is the type of the event a relay writes when it dropped events that could
// not reach the database (Options.MaxPending): its data is {"reason","dropped"}.
// Event streams send it like any other; the dashboard answers "reset" by fetching a
// new snapshot.
const Reset = "reset"

// maxBatch is the most events one transaction writes, and one read appends.
const maxBatch = 1000

// Retry delays after a failed connection or transaction: from minBackoff, doubling
// up to maxBackoff.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Options configure a relay. The zero value means the documented defaults.
type Options struct {
	// Site is the server's name (serve --site), recorded in the table's site column of
	// every event it publishes (the stream does not send it: events about boards and
	// deployments name their site in their data).
	// Default "main".
	Site string
	// Keep is how many of the latest events the table keeps; older rows are deleted
	// as new ones arrive. Default DefaultKeep (100 000).
	Keep int64
	// MaxPending is how many published events may wait in memory while the database
	// cannot be reached; past it the oldest are dropped and replaced by one Reset
	// event. Default DefaultMaxPending (50 000; events are a few hundred bytes each).
	MaxPending int
	// Poll is how long the listener waits for a notification before it reads the
	// table anyway. Default DefaultPoll (5 s).
	Poll time.Duration
	// Logger; nil discards. Logs name the database's host and name, never the URL (it
	// may hold a password).
	Logger *slog.Logger
}

// Relay is one server's link between its bus and the events table. Make it with
// New and run Serve.
type Relay struct {
	cfg    *pgx.ConnConfig
	bus    *events.Bus
	opt    Options
	log    *slog.Logger
	origin string // prefix of this process's origins: "SITE/RANDOM/"

	mu      sync.Mutex
	pending []pending // published, not yet committed, oldest first
	next    int64     // number of the last event enqueued
	dropped int64     // events dropped past MaxPending, not yet told by a Reset event
	wake    chan struct{}

	written     atomic.Int64 // events committed by this relay
	droppedAll  atomic.Int64 // events dropped past MaxPending, in all
	unreachable atomic.Bool  // the last attempt to reach the database failed
}

// pending is one published event waiting for the database; n numbers it in this
// process (its origin).
type pending struct {
	n  int64
	ev events.Event
}

// New makes a relay for bus on the database at url (postgres://…) and takes over
// the bus's Publish (events.Bus.Relay): from now on published events wait for Serve.
// It does not connect yet.
func New(url string, bus *events.Bus, opt Options) (*Relay, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("event relay: database URL %q: not a valid PostgreSQL connection URL", store.Redact(url))
	}
	if opt.Site == "" {
		opt.Site = "main"
	}
	if opt.Keep <= 0 {
		opt.Keep = DefaultKeep
	}
	if opt.MaxPending <= 0 {
		opt.MaxPending = DefaultMaxPending
	}
	if opt.Poll <= 0 {
		opt.Poll = DefaultPoll
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("db_host", cfg.Host, "db", cfg.Database)
	var id [6]byte
	rand.Read(id[:])
	r := &Relay{cfg: cfg, bus: bus, opt: opt, log: log, origin: opt.Site + "/" + hex.EncodeToString(id[:]) + "/",
		wake: make(chan struct{}, 1)}
	bus.Relay(r.enqueue)
	return r, nil
}

// Stats are a relay's counters.
type Stats struct {
	Pending int   // events waiting for the database
	Written int64 // events this relay committed
	Dropped int64 // events dropped past MaxPending
	// Unreachable: the last attempt to reach the database failed.
	Unreachable bool
}

// Stats returns the relay's counters now.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	n := len(r.pending)
	r.mu.Unlock()
	return Stats{Pending: n, Written: r.written.Load(), Dropped: r.droppedAll.Load(), Unreachable: r.unreachable.Load()}
}

// enqueue takes one published event (Bus.Relay's out).
func (r *Relay) enqueue(ev events.Event) {
	r.mu.Lock()
	r.next++
	r.pending = append(r.pending, pending{n: r.next, ev: ev})
	if over := len(r.pending) - r.opt.MaxPending; over > 0 {
		clear(r.pending[:over])
		r.pending = r.pending[over:]
		r.dropped += int64(over)
		r.droppedAll.Add(int64(over))
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Serve writes the published events to the table and appends the table's events to
// the bus until ctx ends; then it writes what still waits (for at most a few
// seconds) and returns nil. A database that cannot be reached is retried, never an
// error.
func (r *Relay) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { r.serveWrites(ctx) })
	wg.Go(func() { r.serveReads(ctx) })
	wg.Wait()
	return nil
}

// CatchUp connects once and appends the table's latest events to the bus, as Serve
// does first; a server calls it before it answers clients, so that a resume at it
// finds the events at once. It returns the error when the database cannot be reached
// (Serve retries).
func (r *Relay) CatchUp(ctx context.Context) error {
	conn, err := r.connect(ctx, "catch-up")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return r.catchUp(ctx, conn)
}

// connect opens one connection, named for pg_stat_activity (application_name).
func (r *Relay) connect(ctx context.Context, role string) (*pgx.Conn, error) {
	cfg := r.cfg.Copy()
	cfg.RuntimeParams["application_name"] = "rpi-deployd events " + role + " " + r.opt.Site
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("event relay: connect: %w", err)
	}
	return conn, nil
}

// outage logs the first failure of a run of them, and the recovery after one.
func (r *Relay) outage(err error) {
	if err == nil {
		if r.unreachable.Swap(false) {
			r.log.Info("event relay: database reachable again")
		}
		return
	}
	if !r.unreachable.Swap(true) {
		r.log.Warn("event relay: database unreachable; events wait in memory", "err", err, "max_pending", r.opt.MaxPending)
	}
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// serveWrites is the writer: it commits what waits, one transaction at a time.
func (r *Relay) serveWrites(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	backoff := minBackoff
	var unsure *attempt // a transaction whose COMMIT's answer was lost
	// Connected before the first event, which then goes out without waiting for a
	// connection.
	if c, err := r.connect(ctx, "write"); err == nil {
		conn = c
	}
	for {
		if ctx.Err() != nil {
			r.flushAtExit(unsure)
			return
		}
		if unsure == nil {
			if r.idle() {
				select {
				case <-ctx.Done():
					continue
				case <-r.wake:
				}
			}
		}
		var err error
		fresh := conn == nil
		if fresh {
			if conn, err = r.connect(ctx, "write"); err != nil {
				conn = nil
			}
		}
		if err == nil && unsure != nil {
			err = r.resolve(ctx, conn, unsure)
			if err == nil {
				unsure = nil
			}
		}
		if err == nil {
			a := r.take()
			if a != nil {
				err = r.write(ctx, conn, a)
				if err != nil && a.committing {
					unsure = a
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			if conn != nil {
				conn.Close(context.Background())
				conn = nil
			}
			if !fresh {
				// The connection may have been cut while idle (a restart of the
				// database): a new one is tried at once.
				continue
			}
			r.outage(err)
			if !sleep(ctx, backoff) {
				continue
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		r.outage(nil)
		backoff = minBackoff
	}
}

// flushAtExit writes what still waits when Serve's ctx has ended, for at most a few
// seconds, on a connection of its own (the writer's may have been cut mid-statement
// by the cancel).
func (r *Relay) flushAtExit(unsure *attempt) {
	if r.idle() && unsure == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := r.connect(ctx, "write")
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	if unsure != nil && r.resolve(ctx, conn, unsure) != nil {
		return
	}
	for !r.idle() {
		a := r.take()
		if a == nil || r.write(ctx, conn, a) != nil {
			return
		}
	}
}

// idle reports whether nothing waits.
func (r *Relay) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending) == 0 && r.dropped == 0
}

// attempt is one transaction's worth of events.
type attempt struct {
	evs     []events.Event
	origins []string
	last    int64 // number of the last pending event in it
	dropped int64 // the dropped events its Reset event tells of (0: none)
	// after is a seq below every seq the attempt can get (the highest the writer has
	// seen committed before it): where resolve looks for its rows.
	after int64
	// committing: COMMIT was sent; if it failed, the outcome is unknown.
	committing bool
}

// take gathers the oldest waiting events (at most maxBatch), with a Reset event
// first if events were dropped; nil when nothing waits.
func (r *Relay) take() *attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 && r.dropped == 0 {
		return nil
	}
	a := &attempt{}
	if r.dropped > 0 {
		data, _ := json.Marshal(map[string]any{"reason": "events dropped: the database was unreachable", "dropped": r.dropped})
		a.dropped = r.dropped
		a.evs = append(a.evs, events.Event{Time: time.Now().UTC(), Type: Reset, Data: json.RawMessage(data)})
		a.origins = append(a.origins, fmt.Sprintf("%sreset-%d", r.origin, r.next))
	}
	for _, p := range r.pending[:min(len(r.pending), maxBatch)] {
		a.evs = append(a.evs, p.ev)
		a.origins = append(a.origins, fmt.Sprintf("%s%d", r.origin, p.n))
		a.last = p.n
	}
	return a
}

// done removes a committed attempt's events from the waiting ones (some may have been
// dropped meanwhile).
func (r *Relay) done(a *attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := 0
	for i < len(r.pending) && r.pending[i].n <= a.last {
		i++
	}
	clear(r.pending[:i])
	r.pending = r.pending[i:]
	r.dropped -= a.dropped
	r.written.Add(int64(len(a.evs)))
}

// The statements of a write. The INSERT numbers the rows after the highest seq it
// sees, which under READ COMMITTED is the latest committed one: its snapshot is taken
// after the lock is granted.
const (
	sqlLock   = `SELECT pg_advisory_xact_lock($1, $2)`
	sqlInsert = `WITH ins AS (
	INSERT INTO events (seq, at, site, type, data, origin)
	SELECT m.seq + t.n, t.at, $1, t.type, t.data, t.origin
	FROM (SELECT COALESCE(max(seq), 0) AS seq FROM events) AS m,
	     unnest($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS t(at, type, data, origin, n)
	RETURNING seq)
SELECT top, pg_notify($6, top::text)::text FROM (SELECT max(seq) AS top FROM ins) AS x`
	sqlPrune = `DELETE FROM events WHERE seq <= $1`
)

// write commits one attempt. a.committing is set once COMMIT is sent: an error after
// it leaves the outcome unknown (resolve).
func (r *Relay) write(ctx context.Context, conn *pgx.Conn, a *attempt) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var ats, types, data []string
	for _, ev := range a.evs {
		ats = append(ats, store.FormatTime(ev.Time))
		types = append(types, ev.Type)
		data = append(data, string(ev.Data.(json.RawMessage)))
	}
	// Every seq the bus holds was committed before this transaction takes the lock.
	a.after = r.bus.Seq()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("event relay: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, sqlLock, lockClass, lockObject); err != nil {
		return fmt.Errorf("event relay: lock: %w", err)
	}
	var top int64
	if err := tx.QueryRow(ctx, sqlInsert, r.opt.Site, ats, types, data, a.origins, Channel).Scan(&top, new(string)); err != nil {
		return fmt.Errorf("event relay: insert: %w", err)
	}
	// Prune when the numbering crosses a thousand, not on every write.
	if first := top - int64(len(a.evs)) + 1; (first-1)/1000 != top/1000 && top > r.opt.Keep {
		if _, err := tx.Exec(ctx, sqlPrune, top-r.opt.Keep); err != nil {
			return fmt.Errorf("event relay: prune: %w", err)
		}
	}
	a.committing = true
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("event relay: commit: %w", err)
	}
	r.done(a)
	return nil
}

// resolve finds out whether an attempt whose COMMIT's answer was lost committed: its
// first row is there (a transaction commits whole) → it is done; else it waits again.
func (r *Relay) resolve(ctx context.Context, conn *pgx.Conn, a *attempt) error {
	var found bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE seq > $1 AND origin = $2)`,
		a.after, a.origins[0]).Scan(&found)
	if err != nil {
		return fmt.Errorf("event relay: check the last write: %w", err)
	}
	if found {
		r.done(a)
	}
	return nil
}

// serveReads is the listener: it appends the table's new events to the bus, woken by
// notifications, every Options.Poll, and after each reconnect.
func (r *Relay) serveReads(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		err := r.listen(ctx, func() { backoff = minBackoff; r.outage(nil) })
		if ctx.Err() != nil {
			return
		}
		r.outage(err)
		sleep(ctx, backoff)
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen runs one listening connection until it fails (its error) or ctx ends;
// ok is called once it listens and has caught up.
func (r *Relay) listen(ctx context.Context, ok func()) error {
	conn, err := r.connect(ctx, "listen")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// LISTEN before reading: an event committed after the read then wakes us.
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("event relay: listen: %w", err)
	}
	var top int64
	if err := conn.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM events`).Scan(&top); err != nil {
		return fmt.Errorf("event relay: read: %w", err)
	}
	if seq := r.bus.Seq(); top < seq {
		// The numbering went back: the database was restored from a backup under a
		// running server. The bus cannot follow it back; a restart starts afresh.
		r.log.Error("event relay: the events table ends before this server's last event (database restored?); "+
			"restart rpi-deployd to follow it", "table_seq", top, "server_seq", seq)
	}
	if err := r.catchUp(ctx, conn); err != nil {
		return err
	}
	ok()
	for {
		wctx, cancel := context.WithTimeout(ctx, r.opt.Poll)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && (wctx.Err() == nil || conn.IsClosed()) {
			return fmt.Errorf("event relay: wait for notification: %w", err)
		}
		drain(conn)
		if err := r.catchUp(ctx, conn); err != nil {
			return err
		}
	}
}

// drain discards the notifications the connection has already received: the read
// that follows covers them all (one read per burst of writes, not one per write).
func drain(conn *pgx.Conn) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		// With ctx done, this returns a received notification or, without touching
		// the connection, nil.
		if n, _ := conn.WaitForNotification(done); n == nil {
			return
		}
	}
}

// catchUp appends to the bus, in order, the table's events after the bus's last one;
// a bus that has none starts with its length of the latest events.
func (r *Relay) catchUp(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	last := r.bus.Seq()
	if last == 0 {
		var top int64
		if err := conn.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) FROM events`).Scan(&top); err != nil {
			return fmt.Errorf("event relay: read: %w", err)
		}
		last = max(0, top-int64(r.bus.Keep()))
	}
	for {
		rows, err := conn.Query(ctx, `SELECT seq, at, type, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`,
			last, maxBatch)
		if err != nil {
			return fmt.Errorf("event relay: read: %w", err)
		}
		n := 0
		for rows.Next() {
			var ev events.Event
			var at, data string
			if err := rows.Scan(&ev.Seq, &at, &ev.Type, &data); err != nil {
				rows.Close()
				return fmt.Errorf("event relay: read: %w", err)
			}
			if ev.Seq > last+1 && r.bus.Seq() > 0 {
				r.log.Warn("event relay: events gone from the table before this server read them (retention); streams reset",
					"after", last, "next", ev.Seq, "keep", r.opt.Keep)
			}
			ev.Time, ev.Data = store.ParseTime(at), json.RawMessage(data)
			r.bus.Append(ev)
			last = ev.Seq
			n++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("event relay: read: %w", err)
		}
		if n < maxBatch {
			return nil
		}
	}
}
