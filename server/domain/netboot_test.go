package domain_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

func newService(t *testing.T) (*domain.Service, *store.Store, *events.Bus) {
	svc, st, bus, _ := newClockedService(t)
	return svc, st, bus
}

// testClock is a clock that moves only when the test advances it.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newClockedService is a service over a fresh store whose store and domain share
// one testClock, starting at a fixed instant.
func newClockedService(t *testing.T) (*domain.Service, *store.Store, *events.Bus, *testClock) {
	return newClockedServiceWith(t, domain.Options{})
}

// newClockedServiceWith is newClockedService with the options opt (its DataDir and
// Now are set here).
func newClockedServiceWith(t *testing.T, opt domain.Options) (*domain.Service, *store.Store, *events.Bus, *testClock) {
	t.Helper()
	cfg := storeConfig(t)
	st, err := store.OpenDB(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &testClock{now: time.Date(2026, 5, 26, 9, 0, 0, 0, time.UTC)}
	st.SetClock(clk.Now)
	bus := events.New(0, 0)
	opt.DataDir, opt.Now = cfg.Dir, clk.Now
	return domain.New(st, bus, opt), st, bus, clk
}

// TestRecordNetboot: DHCP and TFTP events land in the board's history and on the
// event stream, by full serial, by the 8-digit TFTP prefix of a known board, or by
// MAC; bad identities are refused and leave no row.
func TestRecordNetboot(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		svc, st, bus := newService(t)
		ctx := context.Background()
		sub, _ := bus.Subscribe(0)
		defer sub.Close()

		evs := []domain.NetbootEvent{
			{Serial: "10000000ABCDEF12", MAC: "2C:CF:67:00:00:01", Kind: domain.NetbootDHCPOffer, IP: "10.0.0.23"},
			{Serial: "abcdef12", Kind: domain.NetbootTFTPFile, File: "abcdef12/config.txt", Bytes: 1234, Duration: 15 * time.Millisecond},
			{MAC: "2c:cf:67:00:00:01", Kind: domain.NetbootTFTPFailed, File: "kernel_2712.img", Error: "timeout"},
		}
		for _, e := range evs {
			if err := svc.RecordNetboot(ctx, e); err != nil {
				t.Fatalf("%+v: %v", e, err)
			}
		}
		hist, err := st.BoardEvents(ctx, "10000000abcdef12", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, h := range hist {
			kinds = append(kinds, h.Kind)
		}
		if got := strings.Join(kinds, ","); got != "dhcp.offer,tftp.file,tftp.failed" {
			t.Errorf("history %v", got)
		}
		b, err := st.Board(ctx, "10000000abcdef12")
		if err != nil || b.IP != "10.0.0.23" || b.MAC != "2c:cf:67:00:00:01" || !strings.Contains(b.LastEvent, "timeout") {
			t.Errorf("board %+v %v", b, err)
		}
		for range evs {
			select {
			case ev := <-sub.C:
				if ev.Type != events.BoardNetboot {
					t.Errorf("event %s", ev.Type)
				}
			case <-time.After(time.Second):
				t.Fatal("no event")
			}
		}
		for _, bad := range []domain.NetbootEvent{{Kind: "dhcp.offer"}, {Serial: "xyz", Kind: "dhcp.offer"}, {MAC: "nope", Kind: "dhcp.ack"}} {
			if err := svc.RecordNetboot(ctx, bad); !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("%+v: %v, want ErrInvalid", bad, err)
			}
		}
		boards, _ := st.Boards(ctx, store.BoardFilter{})
		if len(boards) != 1 {
			t.Errorf("%d boards, want 1", len(boards))
		}
		got, err := svc.LookupBoard(ctx, "ABCDEF12", "")
		if err != nil || got.Serial != "10000000abcdef12" {
			t.Errorf("lookup by short serial: %+v %v", got, err)
		}
		if _, err := svc.LookupBoard(ctx, "", "2c:cf:67:99:99:99"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("lookup of unknown MAC: %v", err)
		}
	})
}

// TestHelloWithoutBatchRetries: with no batch (or a paused one) a board is told to
// retry with a delay, and nothing but the board's record is written.
func TestHelloWithoutBatchRetries(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		svc, st, _ := newService(t)
		ctx := context.Background()
		r, err := svc.Hello(ctx, agentapi.Hello{Serial: "10000000abcdef12", MAC: "2c:cf:67:00:00:01"})
		if err != nil || r.Action != agentapi.ActionRetry || r.RetryAfterMS != 10000 {
			t.Fatalf("%+v %v", r, err)
		}
		for range 3 {
			svc.Hello(ctx, agentapi.Hello{Serial: "10000000abcdef12", MAC: "2c:cf:67:00:00:01"})
		}
		ds, _ := st.Deployments(ctx, store.DeploymentFilter{})
		if len(ds) != 0 {
			t.Errorf("%d deployments", len(ds))
		}
		// A waiting board asks again and again: that is no history, only its last event.
		hist, _ := st.BoardEvents(ctx, "10000000abcdef12", "", 0)
		b, _ := st.Board(ctx, "10000000abcdef12")
		if len(hist) != 0 || !strings.HasPrefix(b.LastEvent, "retry: no active batch") {
			t.Errorf("history %+v, last event %q", hist, b.LastEvent)
		}
	})
}

// TestPasswordHash pins the password encoding: salted, verifiable, not the password.
func TestPasswordHash(t *testing.T) {
	h1, _ := domain.HashPassword("correct horse")
	h2, _ := domain.HashPassword("correct horse")
	if h1 == h2 || strings.Contains(h1, "correct") || !strings.HasPrefix(h1, "pbkdf2-sha256$210000$") {
		t.Errorf("hashes %q %q", h1, h2)
	}
	if !domain.CheckPassword(h1, "correct horse") || domain.CheckPassword(h1, "correct horsE") || domain.CheckPassword("garbage", "") {
		t.Error("check")
	}
}

// TestAbandonSilent: an open deployment without news for too long is abandoned,
// which frees its batch slot; the board keeps its name and gets it back.
func TestAbandonSilent(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		svc, st, _, clk := newClockedService(t)
		ctx := context.Background()
		err := st.Update(ctx, func(t *store.Tx) error {
			t.PutImage(ctx, store.Image{Name: "img", Size: 1, SHA256: "x", CompressedSize: 1, Manifest: "{}", State: store.ImageReady})
			t.PutVenue(ctx, "CORO", "")
			t.SetProductImage(ctx, "KXP2", "img")
			t.AddPoolName(ctx, store.PoolName{Name: "KXP2-CORO-001", Venue: "CORO", Product: "KXP2", Seq: 1})
			t.AddPoolName(ctx, store.PoolName{Name: "KXP2-CORO-002", Venue: "CORO", Product: "KXP2", Seq: 2})
			_, err := t.AddBatch(ctx, store.Batch{Venue: "CORO", Product: "KXP2", Count: 1, State: store.BatchActive})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		a := agentapi.Hello{Serial: "10000000aaaaaaaa", MAC: "2c:cf:67:00:00:0a"}
		if r, _ := svc.Hello(ctx, a); r.Deployment == nil || r.Deployment.Hostname != "KXP2-CORO-001" {
			t.Fatalf("a: %+v", r)
		}
		b := agentapi.Hello{Serial: "10000000bbbbbbbb", MAC: "2c:cf:67:00:00:0b"}
		if r, _ := svc.Hello(ctx, b); r.Action != agentapi.ActionRetry {
			t.Fatalf("b while the batch is full: %+v", r)
		}
		if n, err := svc.AbandonSilent(ctx, time.Hour); n != 0 || err != nil {
			t.Fatalf("fresh deployment abandoned: %d %v", n, err)
		}
		clk.Advance(59 * time.Minute)
		if n, err := svc.AbandonSilent(ctx, time.Hour); n != 0 || err != nil {
			t.Fatalf("deployment silent for 59 minutes abandoned: %d %v", n, err)
		}
		clk.Advance(2 * time.Minute)
		if n, err := svc.AbandonSilent(ctx, time.Hour); n != 1 || err != nil {
			t.Fatalf("abandoned %d, %v; want 1", n, err)
		}
		if r, _ := svc.Hello(ctx, b); r.Deployment == nil || r.Deployment.Hostname != "KXP2-CORO-002" {
			t.Fatalf("b after the slot was freed: %+v", r)
		}
		bt, _ := st.Batch(ctx, 1)
		if bt.InFlight != 1 {
			t.Errorf("batch in progress %d, want 1", bt.InFlight)
		}
	})
}

// TestPendingBatch: a batch created paused is pending: boards wait until it is
// resumed; pause and cancel stop new boards joining.
func TestPendingBatch(t *testing.T) {
	bothDialects(t, func(t *testing.T) {
		svc, st, _ := newService(t)
		ctx := domain.WithActor(context.Background(), "test")
		st.Update(ctx, func(t *store.Tx) error {
			return t.PutImage(ctx, store.Image{Name: "img", Size: 1, SHA256: "x", CompressedSize: 1, FirstBoot: "firstrun", Manifest: "{}", State: store.ImageReady})
		})
		if _, err := svc.PutVenue(ctx, "ARIA", "Aria"); err != nil {
			t.Fatal(err)
		}
		b, err := svc.AddBatch(ctx, domain.BatchSpec{Venue: "ARIA", Product: "RXP2", Image: "img", Paused: true})
		if err != nil || b.State != store.BatchPending {
			t.Fatalf("%+v %v", b, err)
		}
		h := agentapi.Hello{Serial: "10000000abcdef12", MAC: "2c:cf:67:00:00:01"}
		if r, _ := svc.Hello(ctx, h); r.Action != agentapi.ActionRetry {
			t.Errorf("pending batch: %+v", r)
		}
		if b, _ = svc.ChangeBatch(ctx, b.ID, domain.BatchResume, 0); b.State != store.BatchActive {
			t.Errorf("resume: %s", b.State)
		}
		if r, _ := svc.Hello(ctx, h); r.Deployment == nil || r.Deployment.Hostname != "RXP2-ARIA-ABCDEF12" {
			t.Errorf("active batch: %+v", r)
		}
		svc.ChangeBatch(ctx, b.ID, domain.BatchCancel, 0)
		if _, err := svc.ChangeBatch(ctx, b.ID, domain.BatchResume, 0); !errors.Is(err, domain.ErrConflict) {
			t.Errorf("resume a cancelled batch: %v", err)
		}
		log, _ := st.AuditLog(ctx, store.AuditFilter{Actor: "test"})
		if len(log) != 4 {
			t.Errorf("audit: %d entries, want 4 (venue, batch add, resume, cancel)", len(log))
		}
	})
}
