-- 0033: sites. Every rpi-deployd has a site name (serve --site, default 'main'); several
-- servers may share one database (PostgreSQL). A board records the site that last saw
-- it, a deployment the site it runs at, a board event the site that recorded it. Rows
-- written before this migration were written by the one server there was: 'main'.
-- sites: every server that has started on this database, by site name.
CREATE TABLE sites (
  name       TEXT PRIMARY KEY,  -- [a-z0-9-]{1,32}
  created_at TEXT NOT NULL,     -- first start of a server of this site
  started_at TEXT NOT NULL      -- latest start
);
ALTER TABLE boards ADD COLUMN site TEXT NOT NULL DEFAULT 'main';
ALTER TABLE deployments ADD COLUMN site TEXT NOT NULL DEFAULT 'main';
ALTER TABLE board_events ADD COLUMN site TEXT NOT NULL DEFAULT 'main';
CREATE INDEX boards_site ON boards (site, last_seen);
CREATE INDEX deployments_site ON deployments (site, id);
