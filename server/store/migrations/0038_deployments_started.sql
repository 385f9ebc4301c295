-- deployments_started (started_at) served no query: the deployment list filters
-- started_at inside "(? = '' OR …)" terms, which no index can serve (it reads the
-- table newest first, ORDER BY id DESC LIMIT), and the open deployments by start
-- time have deployments_claims (started_at, open and not streamed). Every new
-- deployment still wrote it.
DROP INDEX deployments_started;
