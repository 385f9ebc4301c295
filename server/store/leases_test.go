package store

import (
	"context"
	"testing"
	"time"
)

func TestDHCPLeases(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s, err := OpenDB(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := s.Version(ctx); err != nil || v < 50 {
			t.Fatalf("schema version %d, %v; want migration 0050 applied", v, err)
		}
		exp := time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)
		a := DHCPLease{MAC: "2c:cf:67:00:00:01", IP: "10.42.0.100", Serial: "abcd1234", Kind: "bootloader", ExpiresAt: exp}
		b := DHCPLease{MAC: "2c:cf:67:00:00:02", IP: "10.42.0.101", Kind: "other", Hostname: "x", ExpiresAt: exp}
		for _, l := range []DHCPLease{a, b} {
			if err := s.PutDHCPLease(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		// a renews as the agent at another address; then b claims that address.
		a.Kind, a.IP = "agent", "10.42.0.102"
		if err := s.PutDHCPLease(ctx, a); err != nil {
			t.Fatal(err)
		}
		b.IP = "10.42.0.102" // a's address: a's lease goes
		if err := s.PutDHCPLease(ctx, b); err != nil {
			t.Fatal(err)
		}
		s.Close()

		s, err = OpenDB(ctx, cfg) // persisted across a restart
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := s.DHCPLeases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].MAC != b.MAC || got[0].IP != "10.42.0.102" || !got[0].ExpiresAt.Equal(exp) || got[0].UpdatedAt.IsZero() {
			t.Fatalf("leases = %+v, want only b at 10.42.0.102", got)
		}
		if err := s.DeleteDHCPLease(ctx, b.MAC); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDHCPLease(ctx, "no:such"); err != nil {
			t.Errorf("deleting a missing lease: %v", err)
		}
		if got, _ := s.DHCPLeases(ctx); len(got) != 0 {
			t.Errorf("after delete: %+v", got)
		}
	})
}
