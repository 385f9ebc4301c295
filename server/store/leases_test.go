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
			if err := s.PutDHCPLease(ctx, "main", l); err != nil {
				t.Fatal(err)
			}
		}
		// a renews as the agent at another address; then b claims that address.
		a.Kind, a.IP = "agent", "10.42.0.102"
		if err := s.PutDHCPLease(ctx, "main", a); err != nil {
			t.Fatal(err)
		}
		b.IP = "10.42.0.102" // a's address: a's lease goes
		if err := s.PutDHCPLease(ctx, "main", b); err != nil {
			t.Fatal(err)
		}
		s.Close()

		s, err = OpenDB(ctx, cfg) // persisted across a restart
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := s.DHCPLeases(ctx, "main")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].MAC != b.MAC || got[0].IP != "10.42.0.102" || !got[0].ExpiresAt.Equal(exp) || got[0].UpdatedAt.IsZero() {
			t.Fatalf("leases = %+v, want only b at 10.42.0.102", got)
		}
		if err := s.DeleteDHCPLease(ctx, "main", b.MAC); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDHCPLease(ctx, "main", "no:such"); err != nil {
			t.Errorf("deleting a missing lease: %v", err)
		}
		if got, _ := s.DHCPLeases(ctx, "main"); len(got) != 0 {
			t.Errorf("after delete: %+v", got)
		}
	})
}

// TestDHCPLeasesPerSite: two sites sharing a database are two deploy networks: the
// same MAC and the same address may hold a lease at each, and one site's renewals
// and deletes never touch the other's lease.
func TestDHCPLeasesPerSite(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		exp := time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)
		a := DHCPLease{MAC: "2c:cf:67:00:00:01", IP: "10.42.0.100", Kind: "bootloader", ExpiresAt: exp}
		b := DHCPLease{MAC: "2c:cf:67:00:00:02", IP: "10.42.0.100", Kind: "bootloader", ExpiresAt: exp}
		if err := s.PutDHCPLease(ctx, "north", a); err != nil {
			t.Fatal(err)
		}
		if err := s.PutDHCPLease(ctx, "south", b); err != nil { // same address, other network
			t.Fatal(err)
		}
		a2 := a
		a2.IP = "10.42.0.101"
		if err := s.PutDHCPLease(ctx, "south", a2); err != nil { // same MAC at the other site
			t.Fatalf("same MAC at a second site: %v", err)
		}
		if err := s.DeleteDHCPLease(ctx, "south", a.MAC); err != nil {
			t.Fatal(err)
		}
		north, err := s.DHCPLeases(ctx, "north")
		if err != nil {
			t.Fatal(err)
		}
		south, err := s.DHCPLeases(ctx, "south")
		if err != nil {
			t.Fatal(err)
		}
		if len(north) != 1 || north[0].MAC != a.MAC || north[0].IP != a.IP {
			t.Errorf("north leases = %+v, want only a at %s", north, a.IP)
		}
		if len(south) != 1 || south[0].MAC != b.MAC || south[0].IP != b.IP {
			t.Errorf("south leases = %+v, want only b at %s", south, b.IP)
		}
	})
}
