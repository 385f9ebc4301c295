-- 0020: defences of issue 13 on the deployment level.
-- secret_sha256: SHA-256 (hex) of the deployment's secret; the secret itself is only
--   ever in the hello answer. '' for deployments made before this migration.
-- source: the address the hello that opened the deployment came from.
-- streamed_at: when the board first fetched image bytes with the deployment's secret;
--   NULL = it never did, so its card cannot hold this deployment's image or name.
-- served: image bytes sent for the deployment's secret, resumes and overlaps included;
--   below the image's compressed size the board cannot hold the whole image, so its
--   card cannot carry the name (the agent names the card only after checking it all).
ALTER TABLE deployments ADD COLUMN secret_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN streamed_at TEXT;
ALTER TABLE deployments ADD COLUMN served BIGINT NOT NULL DEFAULT 0;
-- Deployments made before this migration count as streamed, and completely: nothing is
-- known of them.
UPDATE deployments SET streamed_at = started_at, served = 4611686018427387904;
CREATE INDEX deployments_secret ON deployments (secret_sha256) WHERE state = 'open';
CREATE INDEX deployments_open_source ON deployments (source) WHERE state = 'open';
CREATE INDEX boards_hostname ON boards (hostname);
CREATE INDEX board_events_serial_id ON board_events (serial, id);
CREATE INDEX sessions_expires ON sessions (expires_at);
