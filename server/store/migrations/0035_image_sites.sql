-- Which site (rpi-deployd --site) holds which image: one row per site and image
-- name, with the content it holds (sha256 of the raw image, compressed_sha256 of
-- the .img.zst) so that a site never serves another version under the same name.
-- url is the base URL at which that server answers its peers (rpi-deployd
-- --peer-url); state is 'pulling' while the bytes arrive from another site and
-- 'ready' once they are whole and verified; bytes is how many verified bytes the
-- site holds (the compressed size when ready); source is the site pulled from.
CREATE TABLE image_sites (
  site              TEXT NOT NULL,
  image             TEXT NOT NULL,
  sha256            TEXT NOT NULL,
  compressed_sha256 TEXT NOT NULL,
  url               TEXT NOT NULL DEFAULT '',
  state             TEXT NOT NULL CHECK (state IN ('pulling', 'ready')),
  bytes             INTEGER NOT NULL DEFAULT 0,
  source            TEXT NOT NULL DEFAULT '',
  updated_at        TEXT NOT NULL,
  PRIMARY KEY (site, image)
);
CREATE INDEX image_sites_by_content ON image_sites (image, compressed_sha256, state);

-- The credential servers that share this database show each other when one pulls
-- an image from another (Authorization: Bearer TOKEN on the peer endpoint): one
-- row, created by the first server that starts on the database; never logged,
-- exported or published.
CREATE TABLE peer_credentials (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  token      TEXT NOT NULL,
  created_at TEXT NOT NULL
);
