-- 0050 (netboot): DHCP leases of rpi-deployd's full-mode DHCP server (server/dhcp).
-- One row per client MAC; an address belongs to at most one MAC.
CREATE TABLE dhcp_leases (
  mac        TEXT PRIMARY KEY,           -- aa:bb:cc:dd:ee:ff
  ip         TEXT NOT NULL UNIQUE,       -- dotted IPv4
  serial     TEXT NOT NULL DEFAULT '',   -- 8 hex digits from DHCP option 97, when the board sent it
  kind       TEXT NOT NULL DEFAULT '',   -- bootloader, agent or other (last request)
  hostname   TEXT NOT NULL DEFAULT '',   -- option 12 of the last request
  expires_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX dhcp_leases_serial ON dhcp_leases (serial);
