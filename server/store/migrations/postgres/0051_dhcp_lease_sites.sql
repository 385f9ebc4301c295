-- 0051 (netboot): DHCP leases belong to one deploy network, so to one site: servers that share a
-- database keep their leases apart. A MAC has one lease per site, and an address
-- belongs to at most one MAC per site. (After 0050, which made the table.) Leases
-- stored before this migration were the one server's: 'main'.
CREATE TABLE dhcp_leases_by_site (
  site       TEXT NOT NULL DEFAULT 'main',
  mac        TEXT NOT NULL,
  ip         TEXT NOT NULL,
  serial     TEXT NOT NULL DEFAULT '',
  kind       TEXT NOT NULL DEFAULT '',
  hostname   TEXT NOT NULL DEFAULT '',
  expires_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (site, mac),
  UNIQUE (site, ip)
);
INSERT INTO dhcp_leases_by_site (site, mac, ip, serial, kind, hostname, expires_at, updated_at)
  SELECT 'main', mac, ip, serial, kind, hostname, expires_at, updated_at FROM dhcp_leases;
DROP TABLE dhcp_leases;
ALTER TABLE dhcp_leases_by_site RENAME TO dhcp_leases;
CREATE INDEX dhcp_leases_serial ON dhcp_leases (serial);
