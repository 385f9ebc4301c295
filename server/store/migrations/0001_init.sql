-- 0001: the inventory, allocation and deployment tables of rpi-deployd.
-- Times are RFC 3339 UTC strings with nanoseconds (they sort as text).

CREATE TABLE venues (
  code       TEXT PRIMARY KEY CHECK (length(code) = 4),
  name       TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL
);

-- naming: 'pool' (next free name of the venue's pool) or 'serial' (low 8 hex digits
-- of the board serial, upper case). digits: width of the pool number.
CREATE TABLE products (
  code        TEXT PRIMARY KEY,
  name        TEXT NOT NULL DEFAULT '',
  naming      TEXT NOT NULL CHECK (naming IN ('pool', 'serial')),
  digits      INTEGER NOT NULL DEFAULT 3,
  image       TEXT,             -- the active image for this product, if any
  first_boot  TEXT NOT NULL DEFAULT '{}', -- JSON agentapi.FirstBoot defaults (hostname ignored)
  created_at  TEXT NOT NULL
);

CREATE TABLE pool_names (
  name       TEXT PRIMARY KEY,
  venue      TEXT NOT NULL REFERENCES venues(code),
  product    TEXT NOT NULL REFERENCES products(code),
  seq        INTEGER NOT NULL,
  serial     TEXT,               -- the board that holds it; NULL while free
  bound_at   TEXT,
  retired    INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);
CREATE INDEX pool_names_free ON pool_names (venue, product, retired, serial, seq);
CREATE UNIQUE INDEX pool_names_holder ON pool_names (venue, product, serial) WHERE serial IS NOT NULL;

-- state: 'uploading' (manifest known, bytes arriving) or 'ready'.
CREATE TABLE images (
  name              TEXT PRIMARY KEY,
  size              INTEGER NOT NULL,
  sha256            TEXT NOT NULL,
  compressed_size   INTEGER NOT NULL,
  compressed_sha256 TEXT NOT NULL DEFAULT '',
  first_boot        TEXT NOT NULL DEFAULT '',
  os_release        TEXT NOT NULL DEFAULT '',
  manifest          TEXT NOT NULL,
  state             TEXT NOT NULL CHECK (state IN ('uploading', 'ready')),
  created_at        TEXT NOT NULL,
  ready_at          TEXT
);

CREATE TABLE batches (
  id          INTEGER PRIMARY KEY,
  venue       TEXT NOT NULL REFERENCES venues(code),
  product     TEXT NOT NULL REFERENCES products(code),
  image       TEXT NOT NULL DEFAULT '', -- '' = the product's active image at hello time
  count       INTEGER,                 -- NULL = open-ended
  priority    INTEGER NOT NULL DEFAULT 0,
  state       TEXT NOT NULL CHECK (state IN ('pending', 'active', 'paused', 'complete', 'cancelled')),
  done        INTEGER NOT NULL DEFAULT 0, -- verified deployments
  note        TEXT NOT NULL DEFAULT '',
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
CREATE INDEX batches_state ON batches (state, priority);

CREATE TABLE boards (
  serial        TEXT PRIMARY KEY,   -- 16 lower-case hex digits
  mac           TEXT NOT NULL DEFAULT '',
  model         TEXT NOT NULL DEFAULT '',
  revision      TEXT NOT NULL DEFAULT '',
  ip            TEXT NOT NULL DEFAULT '',
  hostname      TEXT NOT NULL DEFAULT '', -- current (last verified, else bound) hostname
  image         TEXT NOT NULL DEFAULT '', -- image of the last verified deployment
  deployed      INTEGER NOT NULL DEFAULT 0,
  reimage       INTEGER NOT NULL DEFAULT 0, -- re-image on next boot
  last_event    TEXT NOT NULL DEFAULT '',   -- last netboot or agent event, human words
  first_seen    TEXT NOT NULL,
  last_seen     TEXT NOT NULL
);
CREATE INDEX boards_mac ON boards (mac);

-- state: 'open' until a result: 'verified' or 'failed' (or 'abandoned' when superseded).
CREATE TABLE deployments (
  id            INTEGER PRIMARY KEY,
  serial        TEXT NOT NULL REFERENCES boards(serial),
  batch_id      INTEGER REFERENCES batches(id),
  venue         TEXT NOT NULL,
  product       TEXT NOT NULL,
  hostname      TEXT NOT NULL,
  image         TEXT NOT NULL,
  state         TEXT NOT NULL CHECK (state IN ('open', 'verified', 'failed', 'abandoned')),
  phase         TEXT NOT NULL,
  bytes         INTEGER NOT NULL DEFAULT 0,
  total         INTEGER NOT NULL DEFAULT 0,
  rate_bps      REAL NOT NULL DEFAULT 0,
  message       TEXT NOT NULL DEFAULT '',
  error         TEXT NOT NULL DEFAULT '',
  error_phase   TEXT NOT NULL DEFAULT '',
  sha256        TEXT NOT NULL DEFAULT '',
  bytes_written INTEGER NOT NULL DEFAULT 0,
  bytes_fetched INTEGER NOT NULL DEFAULT 0,
  duration_ms   INTEGER NOT NULL DEFAULT 0,
  started_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL,
  finished_at   TEXT
);
CREATE UNIQUE INDEX deployments_one_open ON deployments (serial) WHERE state = 'open';
CREATE INDEX deployments_batch ON deployments (batch_id, state);
CREATE INDEX deployments_started ON deployments (started_at);

CREATE TABLE deployment_phases (
  deployment_id INTEGER NOT NULL REFERENCES deployments(id),
  phase         TEXT NOT NULL,
  at            TEXT NOT NULL,
  bytes         INTEGER NOT NULL DEFAULT 0,
  message       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX deployment_phases_dep ON deployment_phases (deployment_id);

-- netboot events (DHCP, TFTP) and agent hellos per board: its history.
CREATE TABLE board_events (
  id       INTEGER PRIMARY KEY,
  serial   TEXT NOT NULL DEFAULT '',
  mac      TEXT NOT NULL DEFAULT '',
  at       TEXT NOT NULL,
  kind     TEXT NOT NULL,
  detail   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX board_events_serial ON board_events (serial, at);
CREATE INDEX board_events_mac ON board_events (mac, at);

CREATE TABLE audit (
  id      INTEGER PRIMARY KEY,
  at      TEXT NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  object  TEXT NOT NULL DEFAULT '',
  detail  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE users (
  name       TEXT PRIMARY KEY,
  password   TEXT NOT NULL, -- pbkdf2-sha256$ITER$SALT$HASH (base64)
  created_at TEXT NOT NULL
);

CREATE TABLE sessions (
  token_sha256 TEXT PRIMARY KEY,
  user         TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
  created_at   TEXT NOT NULL,
  expires_at   TEXT NOT NULL
);

INSERT INTO products (code, name, naming, digits, created_at) VALUES
  ('KXP2', 'KartXPro', 'pool', 3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  ('RXP2', 'RaceXPro', 'serial', 3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
