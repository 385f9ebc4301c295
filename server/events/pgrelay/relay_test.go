package pgrelay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// migrate creates the schema, events table included, on the database at dsn as a
// server does: the store opens it.
func migrate(t testing.TB, dsn string) {
	t.Helper()
	st, err := store.OpenDB(context.Background(), store.Config{URL: dsn})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// exec runs sql on its own connection.
func exec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// server is one in-process "server": a bus and its relay, served until the test ends.
type server struct {
	bus   *events.Bus
	relay *Relay
}

func start(t testing.TB, dsn, site string, opt Options) server {
	t.Helper()
	bus := events.New(0, 0)
	opt.Site = site
	r, err := New(dsn, bus, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Serve(ctx); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return server{bus, r}
}

// got is what a bus delivered: the SSE messages read by a cursor, decoded.
type got struct {
	Seq  int64           `json:"seq"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// readUntil reads cur until it has delivered seq upto, and returns what it read
// (the test fails if that takes more than a minute: the events never came).
func readUntil(t *testing.T, cur *events.Cursor, upto int64) []got {
	t.Helper()
	deadline := time.After(time.Minute)
	var out []got
	for len(out) == 0 || out[len(out)-1].Seq < upto {
		select {
		case <-cur.Ready():
		case <-deadline:
			t.Fatalf("events up to %d never came; last %v", upto, out[max(0, len(out)-1):])
		}
		b, lost := cur.Read(nil, 0)
		if lost {
			t.Fatal("cursor lost events")
		}
		out = append(out, parse(t, b)...)
	}
	return out
}

// parse decodes SSE messages ("id: N\nevent: T\ndata: JSON\n\n"), checking that id
// and event agree with the JSON.
func parse(t *testing.T, b []byte) []got {
	t.Helper()
	var out []got
	for _, msg := range bytes.Split(bytes.TrimSuffix(b, []byte("\n\n")), []byte("\n\n")) {
		if len(msg) == 0 {
			continue
		}
		lines := bytes.Split(msg, []byte("\n"))
		if len(lines) != 3 {
			t.Fatalf("SSE message %q", msg)
		}
		var g got
		if err := json.Unmarshal(bytes.TrimPrefix(lines[2], []byte("data: ")), &g); err != nil {
			t.Fatalf("SSE message %q: %v", msg, err)
		}
		if string(lines[0]) != "id: "+strconv.FormatInt(g.Seq, 10) || string(lines[1]) != "event: "+g.Type {
			t.Fatalf("SSE message %q: id or event disagrees with the data", msg)
		}
		out = append(out, g)
	}
	return out
}

// row is one row of the events table.
type row struct {
	Seq                    int64
	Site, Type, Data, Orig string
}

func rows(t *testing.T, dsn string) []row {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rs, err := conn.Query(ctx, `SELECT seq, site, type, data, origin FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.Seq, &x.Site, &x.Type, &x.Data, &x.Orig)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// publish publishes n events at s from `workers` goroutines at once; each event's
// data is {"site": label, "i": its number}, so the test can tell them apart.
func publish(s server, label string, n, workers int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				s.bus.Publish(events.BoardNetboot, map[string]any{"site": label, "i": i})
			}
		})
	}
	wg.Wait()
}

// TestTwoServersOneOrder: two servers on one database publish at the same time; the
// streams of both deliver every event of both, exactly once, in one order numbered
// 1, 2, 3, …; the table holds exactly what the streams send.
func TestTwoServersOneOrder(t *testing.T) {
	dsn := pgtest.DB(t)
	migrate(t, dsn)
	a, b := start(t, dsn, "north", Options{}), start(t, dsn, "south", Options{})
	ca, _ := a.bus.Follow(0)
	cb, _ := b.bus.Follow(0)
	const n = 300
	var wg sync.WaitGroup
	wg.Go(func() { publish(a, "north", n, 4) })
	wg.Go(func() { publish(b, "south", n, 4) })
	wg.Wait()

	ga, gb := readUntil(t, ca, 2*n), readUntil(t, cb, 2*n)
	if diff := cmp.Diff(ga, gb); diff != "" {
		t.Fatalf("the two streams differ (-north +south):\n%s", diff)
	}
	seen := map[string]bool{}
	for i, g := range ga {
		if g.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, g.Seq)
		}
		var d struct {
			Site string
			I    int
		}
		if err := json.Unmarshal(g.Data, &d); err != nil {
			t.Fatalf("event %d: data %s: %v", g.Seq, g.Data, err)
		}
		k := fmt.Sprint(d.Site, d.I)
		if seen[k] {
			t.Fatalf("event %s delivered twice", k)
		}
		seen[k] = true
	}
	if len(seen) != 2*n {
		t.Fatalf("%d distinct events, want %d", len(seen), 2*n)
	}
	var want []got
	for _, r := range rows(t, dsn) {
		want = append(want, got{Seq: r.Seq, Type: r.Type, Data: json.RawMessage(r.Data)})
		if !strings.Contains(r.Data, `"site":"`+r.Site+`"`) {
			t.Errorf("row %d: site %q, but published at %s", r.Seq, r.Site, r.Data)
		}
	}
	if diff := cmp.Diff(want, ga); diff != "" {
		t.Errorf("table and stream differ (-table +stream):\n%s", diff)
	}
}

// TestCommitOrderIsSeqOrder: while two servers publish, a reader polling "seq > last
// ORDER BY seq" never finds a hole that fills later: every read continues the last
// one without a gap (a lower seq committed after a higher one would show as a gap).
func TestCommitOrderIsSeqOrder(t *testing.T) {
	dsn := pgtest.DB(t)
	migrate(t, dsn)
	a, b := start(t, dsn, "north", Options{}), start(t, dsn, "south", Options{})
	const n = 400
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { publish(a, "north", n, 2) })
	wg.Go(func() { publish(b, "south", n, 2) })
	go func() { wg.Wait(); close(stop) }()

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var last int64
	reads := 0
	deadline := time.After(time.Minute)
	for last < 2*n {
		select {
		case <-deadline:
			t.Fatalf("read up to %d of %d", last, 2*n)
		default:
		}
		rs, err := conn.Query(ctx, `SELECT seq FROM events WHERE seq > $1 ORDER BY seq`, last)
		if err != nil {
			t.Fatal(err)
		}
		seqs, err := pgx.CollectRows(rs, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range seqs {
			if s != last+1 {
				t.Fatalf("after seq %d the reader found %d: a lower seq was not committed yet", last, s)
			}
			last = s
		}
		reads++
	}
	<-stop
	t.Logf("%d reads saw the %d events arrive", reads, 2*n)
}

// TestResumeAtOtherServer: a client that read up to seq N at one server and
// reconnects to the other with Last-Event-ID N gets N+1 onwards, no more, no less;
// also when the other server has not appended N yet (it resumes after N when the
// events come), and at a server started after the events were written (it loads the
// latest from the table).
func TestResumeAtOtherServer(t *testing.T) {
	dsn := pgtest.DB(t)
	migrate(t, dsn)
	a, b := start(t, dsn, "north", Options{}), start(t, dsn, "south", Options{})
	ca, _ := a.bus.Follow(0)
	publish(a, "north", 10, 1)
	publish(b, "south", 10, 1)
	seenA := readUntil(t, ca, 20)
	const n = 13
	cb, missed := b.bus.Follow(n)
	if missed {
		t.Fatal("resume after 13 at the other server: missed")
	}
	if diff := cmp.Diff(seenA[n:], readUntil(t, cb, 20)); diff != "" {
		t.Errorf("resume after %d at the other server (-first server +second):\n%s", n, diff)
	}

	// A client ahead of the server it reconnects to: it asks for after 25 while the
	// server may hold only 20; it gets 26.. when they come, never 21..25 again.
	publish(a, "north", 10, 1)
	seenA = append(seenA, readUntil(t, ca, 30)...)
	cb2, _ := b.bus.Follow(25)
	publish(a, "north", 5, 1)
	seenA = append(seenA, readUntil(t, ca, 35)...)
	if diff := cmp.Diff(seenA[25:], readUntil(t, cb2, 35)); diff != "" {
		t.Errorf("resume after 25 (-first server +second):\n%s", diff)
	}

	// A third server, started now, holds the latest events at once (CatchUp).
	bus := events.New(16, 0)
	r, err := New(dsn, bus, Options{Site: "east"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bus.Seq() != 35 {
		t.Fatalf("after CatchUp the new server's bus is at %d, want 35", bus.Seq())
	}
	cc, missed := bus.Follow(30)
	if missed {
		t.Fatal("resume after 30 at a new server holding 16: missed")
	}
	if diff := cmp.Diff(seenA[30:], readUntil(t, cc, 35)); diff != "" {
		t.Errorf("resume after 30 at a new server (-first server +new):\n%s", diff)
	}
	if _, missed := bus.Follow(5); !missed {
		t.Error("resume after 5 at a new server holding 20..35 did not report missed events")
	}
}

// listenerPID is the backend of a relay's listening connection.
func listenerPID(t *testing.T, dsn, site string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(time.Minute)
	for {
		var pids []int
		rs, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, "rpi-deployd events listen "+site)
		if err == nil {
			pids, err = pgx.CollectRows(rs, pgx.RowTo[int])
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 1 {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("listeners of %s: %v", site, pids)
		}
		time.Sleep(10 * time.Millisecond) // polling pg_stat_activity: no event says a connection came
	}
}

// TestListenerKilled: the listening connection of a server is terminated
// (pg_terminate_backend) again and again while the other server publishes; it
// reconnects and catches up from the table: its stream misses nothing and repeats
// nothing.
func TestListenerKilled(t *testing.T) {
	dsn := pgtest.DB(t)
	migrate(t, dsn)
	a, b := start(t, dsn, "north", Options{}), start(t, dsn, "south", Options{Poll: time.Hour})
	ca, _ := a.bus.Follow(0)
	cb, _ := b.bus.Follow(0)
	total := 0
	for round := range 5 {
		pid := listenerPID(t, dsn, "south")
		exec(t, dsn, `SELECT pg_terminate_backend($1)`, pid)
		publish(a, "north", 20, 2)
		total += 20
		if round == 2 {
			publish(b, "south", 5, 1) // the writer of the server whose listener is down
			total += 5
		}
	}
	ga, gb := readUntil(t, ca, int64(total)), readUntil(t, cb, int64(total))
	if len(ga) != total {
		t.Fatalf("first server delivered %d events, want %d", len(ga), total)
	}
	if diff := cmp.Diff(ga, gb); diff != "" {
		t.Errorf("streams differ after the listener was killed (-north +south):\n%s", diff)
	}
}

// TestPostgresRestarted: PostgreSQL stops cleanly, and later is killed (SIGKILL, as a
// crash) while a server publishes. Events published while it is down wait in memory
// and go out when it is back; every event a stream had delivered (committed) keeps
// its seq; every event arrives at both servers exactly once.
func TestPostgresRestarted(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t)
	migrate(t, dsn)
	a, b := start(t, dsn, "north", Options{}), start(t, dsn, "south", Options{})
	ca, _ := a.bus.Follow(0)
	cb, _ := b.bus.Follow(0)
	publish(a, "north", 50, 2)
	gb := readUntil(t, cb, 50)

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	publish(a, "north-stopped", 30, 1)
	publish(b, "south-stopped", 30, 1)
	if p := a.relay.Stats().Pending; p != 30 {
		t.Errorf("north holds %d events while the database is down, want 30", p)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ga := readUntil(t, ca, 110)
	if diff := cmp.Diff(gb, ga[:50]); diff != "" {
		t.Errorf("events delivered before the stop changed (-south before +north after):\n%s", diff)
	}
	gb = append(gb, readUntil(t, cb, 110)...)

	// A crash while events are being written.
	done := make(chan struct{})
	go func() { defer close(done); publish(a, "north-killed", 200, 2) }()
	for a.relay.Stats().Written < 110+20 {
		time.Sleep(time.Millisecond) // until some of the 200 are written: no event says so
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ga, gb = append(ga, readUntil(t, ca, 310)...), append(gb, readUntil(t, cb, 310)...)
	if diff := cmp.Diff(ga, gb); diff != "" {
		t.Errorf("streams differ (-north +south):\n%s", diff)
	}
	distinct(t, ga, 310)
	if n := len(rows(t, dsn)); n != 310 {
		t.Errorf("the table holds %d events, want 310", n)
	}
}

// distinct checks that gs are n events numbered 1..n, each published once.
func distinct(t *testing.T, gs []got, n int) {
	t.Helper()
	seen := map[string]bool{}
	for i, g := range gs {
		if g.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, g.Seq)
		}
		k := string(g.Data)
		if seen[k] {
			t.Fatalf("event %s delivered twice", g.Data)
		}
		seen[k] = true
	}
	if len(gs) != n {
		t.Fatalf("%d events, want %d", len(gs), n)
	}
}

// TestPendingBound: with the database down from the start, a server keeps at most
// MaxPending events; past it the oldest go, and when the database is back the
// streams get one "reset" event (dashboards fetch a new snapshot) that counts them,
// then the newest events in order.
func TestPendingBound(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t)
	migrate(t, dsn)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	a := start(t, dsn, "north", Options{MaxPending: 10})
	ca, _ := a.bus.Follow(0)
	publish(a, "north", 25, 1)
	if s := a.relay.Stats(); s.Pending != 10 || s.Dropped != 15 {
		t.Errorf("stats while down: %+v, want 10 pending, 15 dropped", s)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	gs := readUntil(t, ca, 11)
	var want []got
	reset, _ := json.Marshal(map[string]any{"reason": "events dropped: the database was unreachable", "dropped": 15})
	want = append(want, got{Seq: 1, Type: Reset, Data: reset})
	for i := 15; i < 25; i++ {
		d, _ := json.Marshal(map[string]any{"site": "north", "i": i})
		want = append(want, got{Seq: int64(len(want) + 1), Type: events.BoardNetboot, Data: d})
	}
	if diff := cmp.Diff(want, gs); diff != "" {
		t.Errorf("stream after the outage (-want +got):\n%s", diff)
	}
	// The stream has the events once PostgreSQL delivers their NOTIFY, at COMMIT; the
	// relay counts them written when COMMIT returns to it, which may be later.
	deadline := time.Now().Add(30 * time.Second)
	for s := a.relay.Stats(); (s.Pending != 0 || s.Written != 11) && time.Now().Before(deadline); s = a.relay.Stats() {
		time.Sleep(time.Millisecond)
	}
	if s := a.relay.Stats(); s.Pending != 0 || s.Written != 11 {
		t.Errorf("stats after: %+v, want 0 pending, 11 written", s)
	}
}

// TestBadURL: a URL that is not PostgreSQL's is refused with an error that does not
// carry its password.
func TestBadURL(t *testing.T) {
	_, err := New("postgres://u:s3cret@/db?host=/tmp&connect_timeout=soon", events.New(0, 0), Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("New with a bad URL: %v", err)
	}
}

// TestLostCommitAnswer: a batch whose COMMIT was sent but not answered is looked for
// by its origin before it is written again: committed → it is done (not written
// twice); not committed → it is written.
func TestLostCommitAnswer(t *testing.T) {
	dsn := pgtest.DB(t)
	migrate(t, dsn)
	ctx := context.Background()
	for _, committed := range []bool{true, false} {
		t.Run(fmt.Sprint("committed=", committed), func(t *testing.T) {
			exec(t, dsn, `DELETE FROM events`)
			r, err := New(dsn, events.New(0, 0), Options{Site: "north"})
			if err != nil {
				t.Fatal(err)
			}
			conn, err := r.connect(ctx, "test")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			r.bus.Publish(events.BoardNetboot, map[string]int{"i": 1})
			r.bus.Publish(events.BoardNetboot, map[string]int{"i": 2})
			a := r.take()
			a.committing = true
			if committed { // what the lost COMMIT did: the same statement, committed
				var ats, types, data []string
				for _, ev := range a.evs {
					ats, types, data = append(ats, "2026-12-05T00:00:00.000000000Z"), append(types, ev.Type), append(data, string(ev.Data.(json.RawMessage)))
				}
				if _, err := conn.Exec(ctx, sqlInsert, "north", ats, types, data, a.origins, Channel); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.resolve(ctx, conn, a); err != nil {
				t.Fatal(err)
			}
			if b := r.take(); b != nil {
				if committed {
					t.Fatalf("a committed batch still waits: %d events", len(b.evs))
				}
				if err := r.write(ctx, conn, b); err != nil {
					t.Fatal(err)
				}
			}
			if got := rows(t, dsn); len(got) != 2 || got[0].Data != `{"i":1}` || got[1].Data != `{"i":2}` {
				t.Errorf("table: %+v, want the two events once", got)
			}
			if s := r.Stats(); s.Pending != 0 {
				t.Errorf("stats %+v, want nothing pending", s)
			}
		})
	}
}

// syncBuf is a log buffer the relay's goroutines may write at once.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRestoredDatabaseLogged: when the events table ends before the server's last
// event (the database was restored from a backup under it), the relay says so, with
// what to do, once its listener connects again.
func TestRestoredDatabaseLogged(t *testing.T) {
	dsn := pgtest.DB(t)
	migrate(t, dsn)
	var log syncBuf
	a := start(t, dsn, "north", Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	ca, _ := a.bus.Follow(0)
	publish(a, "north", 5, 1)
	readUntil(t, ca, 5)
	exec(t, dsn, `DELETE FROM events WHERE seq > 2`)
	exec(t, dsn, `SELECT pg_terminate_backend($1)`, listenerPID(t, dsn, "north"))
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(log.String(), "database restored?") {
		if time.Now().After(deadline) {
			t.Fatalf("no word of the restored table in the log:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond) // the log has no event to wait for
	}
	if !strings.Contains(log.String(), "table_seq=2 server_seq=5") {
		t.Errorf("log: %s", log.String())
	}
}
