-- PostgreSQL twin of ../0035_image_sites.sql (same tables and columns): which site
-- holds which image, and the credential servers show each other to pull one.
CREATE TABLE image_sites (
  site              TEXT NOT NULL,
  image             TEXT NOT NULL,
  sha256            TEXT NOT NULL,
  compressed_sha256 TEXT NOT NULL,
  url               TEXT NOT NULL DEFAULT '',
  state             TEXT NOT NULL CHECK (state IN ('pulling', 'ready')),
  bytes             BIGINT NOT NULL DEFAULT 0,
  source            TEXT NOT NULL DEFAULT '',
  updated_at        TEXT NOT NULL,
  PRIMARY KEY (site, image)
);
CREATE INDEX image_sites_by_content ON image_sites (image, compressed_sha256, state);

CREATE TABLE peer_credentials (
  id         BIGINT PRIMARY KEY CHECK (id = 1),
  token      TEXT NOT NULL,
  created_at TEXT NOT NULL
);
