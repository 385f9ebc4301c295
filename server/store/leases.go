package store

import (
	"context"
	"fmt"
	"time"
)

// DHCPLease is one row of dhcp_leases (migration 0050, owned by netboot): the address
// the full-mode DHCP server bound to a MAC.
type DHCPLease struct {
	MAC       string
	IP        string
	Serial    string // 8 hex digits (DHCP option 97)
	Kind      string // bootloader, agent, other
	Hostname  string
	ExpiresAt time.Time
	UpdatedAt time.Time
}

// DHCPLeases returns every stored lease, expired ones included, by address.
func (s *Store) DHCPLeases(ctx context.Context) ([]DHCPLease, error) {
	return collect(ctx, s.r, func(r scanner) (DHCPLease, error) {
		var l DHCPLease
		var exp, upd string
		err := r.Scan(&l.MAC, &l.IP, &l.Serial, &l.Kind, &l.Hostname, &exp, &upd)
		l.ExpiresAt, l.UpdatedAt = ParseTime(exp), ParseTime(upd)
		return l, err
	}, `SELECT mac, ip, serial, kind, hostname, expires_at, updated_at FROM dhcp_leases ORDER BY ip`)
}

// PutDHCPLease stores l under l.MAC, replacing that MAC's lease and any other MAC's
// lease of the same address, in one transaction.
func (s *Store) PutDHCPLease(ctx context.Context, l DHCPLease) error {
	return s.Update(ctx, func(t *Tx) error {
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM dhcp_leases WHERE ip = ? AND mac != ?`, l.IP, l.MAC); err != nil {
			return fmt.Errorf("put dhcp lease %s %s: %w", l.MAC, l.IP, err)
		}
		_, err := t.tx.ExecContext(ctx, `INSERT INTO dhcp_leases (mac, ip, serial, kind, hostname, expires_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (mac) DO UPDATE SET ip = excluded.ip, serial = excluded.serial, kind = excluded.kind,
			hostname = excluded.hostname, expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
			l.MAC, l.IP, l.Serial, l.Kind, l.Hostname, FormatTime(l.ExpiresAt), FormatTime(t.Now))
		if err != nil {
			return fmt.Errorf("put dhcp lease %s %s: %w", l.MAC, l.IP, err)
		}
		return nil
	})
}

// DeleteDHCPLease forgets mac's lease; no error when there is none.
func (s *Store) DeleteDHCPLease(ctx context.Context, mac string) error {
	err := s.Update(ctx, func(t *Tx) error {
		_, err := t.tx.ExecContext(ctx, `DELETE FROM dhcp_leases WHERE mac = ?`, mac)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete dhcp lease %s: %w", mac, err)
	}
	return nil
}
