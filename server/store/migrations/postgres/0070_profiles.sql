-- 0070: first-boot profiles (server/profile). spec is the profile's JSON with the
-- password only as a crypt hash and the Wi-Fi key only as the derived PSK.
CREATE TABLE profiles (
  name       TEXT PRIMARY KEY,
  spec       TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

-- A profile attached to a product, a venue or a batch (target: the product or venue
-- code, or the batch ID in decimal). One profile per scope and target.
CREATE TABLE profile_links (
  scope   TEXT NOT NULL CHECK (scope IN ('product', 'venue', 'batch')),
  target  TEXT NOT NULL,
  profile TEXT NOT NULL REFERENCES profiles (name),
  PRIMARY KEY (scope, target)
);
CREATE INDEX profile_links_profile ON profile_links (profile);

-- The effective (merged) profile of a deployment, fixed when the deployment opens, so
-- that a later profile change reaches only later deployments.
CREATE TABLE deployment_profiles (
  deployment_id BIGINT PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
  spec          TEXT NOT NULL
);
