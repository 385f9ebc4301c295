-- PostgreSQL twin of ../0039_stream_slots_site.sql: the stream slots are counted
-- per site, so their partial indexes hold the site before the time. PostgreSQL
-- takes the conditions of a partial index's WHERE as given for an index-only scan,
-- so streamed_at need not be a column here.
DROP INDEX deployments_claims;
DROP INDEX deployments_active;
CREATE INDEX deployments_claims ON deployments (site, started_at) WHERE state = 'open' AND streamed_at IS NULL;
CREATE INDEX deployments_active ON deployments (site, updated_at) WHERE state = 'open' AND streamed_at IS NOT NULL;
