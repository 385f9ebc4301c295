package store

import (
	"context"
	"fmt"
	"time"
)

// DHCPLease is one row of dhcp_leases (migration 0050, owned by netboot; per site
// since 0051): the address the full-mode DHCP server of one site bound to a MAC. A
// site is one deploy network: servers sharing a database keep their leases apart.
type DHCPLease struct {
	MAC       string
	IP        string
	Serial    string // 8 hex digits (DHCP option 97)
	Kind      string // bootloader, agent, other
	Hostname  string
	ExpiresAt time.Time
	UpdatedAt time.Time
}

// DHCPLeases returns every stored lease of site, expired ones included, by address.
func (s *Store) DHCPLeases(ctx context.Context, site string) ([]DHCPLease, error) {
	return collect(ctx, s.r, func(r scanner) (DHCPLease, error) {
		var l DHCPLease
		var exp, upd string
		err := r.Scan(&l.MAC, &l.IP, &l.Serial, &l.Kind, &l.Hostname, &exp, &upd)
		l.ExpiresAt, l.UpdatedAt = ParseTime(exp), ParseTime(upd)
		return l, err
	}, `SELECT mac, ip, serial, kind, hostname, expires_at, updated_at FROM dhcp_leases WHERE site = ? ORDER BY ip`, site)
}

// PutDHCPLease stores l under site and l.MAC, replacing that MAC's lease and any
// other MAC's lease of the same address at site, in one transaction. Other sites'
// leases are not touched.
func (s *Store) PutDHCPLease(ctx context.Context, site string, l DHCPLease) error {
	return s.Update(ctx, func(t *Tx) error {
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM dhcp_leases WHERE site = ? AND ip = ? AND mac != ?`, site, l.IP, l.MAC); err != nil {
			return fmt.Errorf("put dhcp lease %s %s: %w", l.MAC, l.IP, err)
		}
		_, err := t.tx.ExecContext(ctx, `INSERT INTO dhcp_leases (site, mac, ip, serial, kind, hostname, expires_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (site, mac) DO UPDATE SET ip = excluded.ip, serial = excluded.serial, kind = excluded.kind,
			hostname = excluded.hostname, expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
			site, l.MAC, l.IP, l.Serial, l.Kind, l.Hostname, FormatTime(l.ExpiresAt), t.nowText())
		if err != nil {
			return fmt.Errorf("put dhcp lease %s %s: %w", l.MAC, l.IP, err)
		}
		return nil
	})
}

// DeleteDHCPLease forgets mac's lease at site; no error when there is none.
func (s *Store) DeleteDHCPLease(ctx context.Context, site, mac string) error {
	err := s.Update(ctx, func(t *Tx) error {
		_, err := t.tx.ExecContext(ctx, `DELETE FROM dhcp_leases WHERE site = ? AND mac = ?`, site, mac)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete dhcp lease %s: %w", mac, err)
	}
	return nil
}
