package domain_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

func newService(t *testing.T) (*domain.Service, *store.Store, *events.Bus) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bus := events.New(0, 0)
	return domain.New(st, bus, domain.Options{DataDir: dir}), st, bus
}

// TestRecordNetboot: DHCP and TFTP events land in the board's history and on the
// event stream, by full serial, by the 8-digit TFTP prefix of a known board, or by
// MAC; bad identities are refused and leave no row.
func TestRecordNetboot(t *testing.T) {
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
}

// TestHelloWithoutBatchRetries: with no batch (or a paused one) a board is told to
// retry with a delay, and nothing but the board's record is written.
func TestHelloWithoutBatchRetries(t *testing.T) {
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
