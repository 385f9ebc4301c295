package netboot

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
	"github.com/rpi-deploy/rpi-deploy/server/dhcp"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Lease writes made while PostgreSQL is down are held and reach it in the order they
// were made once it is back: an address taken over by another MAC stays with the
// later one, a deleted lease stays deleted, and the write that found the database
// back is written after the held ones.
func TestHeldLeasesInOrder(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	st, err := store.OpenDB(ctx, store.Config{URL: pg.CreateDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := &heldLeases{next: leaseStore{st: st}, log: slog.New(slog.DiscardHandler)}
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	lease := func(mac, ip string) dhcp.Lease {
		return dhcp.Lease{MAC: mac, IP: netip.MustParseAddr(ip), Kind: dhcp.KindBootloader, Expires: exp}
	}
	if err := h.PutLease(ctx, lease("2c:cf:67:00:00:0a", "10.0.0.5")); err != nil {
		t.Fatalf("put while up: %v", err)
	}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []func() error{
		func() error { return h.PutLease(ctx, lease("2c:cf:67:00:00:0b", "10.0.0.5")) }, // takes A's address
		func() error { return h.PutLease(ctx, lease("2c:cf:67:00:00:0c", "10.0.0.6")) },
		func() error { return h.DeleteLease(ctx, "2c:cf:67:00:00:0c") },
		func() error { return h.PutLease(ctx, lease("2c:cf:67:00:00:0a", "10.0.0.7")) }, // A again, elsewhere
	} {
		if err := w(); err != nil {
			t.Fatalf("write while PostgreSQL is down: %v, want it held", err)
		}
	}
	if n := len(h.held); n != 4 {
		t.Fatalf("%d writes held, want 4", n)
	}

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if err := h.PutLease(ctx, lease("2c:cf:67:00:00:0d", "10.0.0.8")); err != nil {
		t.Fatalf("put after PostgreSQL is back: %v", err)
	}
	if n := len(h.held); n != 0 {
		t.Errorf("%d writes still held after PostgreSQL is back", n)
	}
	got, err := h.LoadLeases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byMAC := map[string]string{}
	for _, l := range got {
		byMAC[l.MAC] = l.IP.String()
	}
	want := map[string]string{"2c:cf:67:00:00:0a": "10.0.0.7", "2c:cf:67:00:00:0b": "10.0.0.5", "2c:cf:67:00:00:0d": "10.0.0.8"}
	if d := cmp.Diff(want, byMAC); d != "" {
		t.Errorf("stored leases (-want +got):\n%s", d)
	}
}
