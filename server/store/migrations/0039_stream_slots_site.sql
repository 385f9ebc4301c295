-- The stream slots' partial indexes (0030) held only their time column, and every
-- count of a site's slots (CountSlots: each hello once the open deployments reach
-- --max-streams) also asks for the site (0033): SQLite then read the table row of
-- every index entry in the time range to check its site. Now the site comes first
-- and the time second, so a count is one range of each index; streamed_at comes
-- last only so that the index covers the query: SQLite takes the partial index's
-- "state = 'open'" as given but still reads "streamed_at IS [NOT] NULL" from a
-- column (a NULL costs an entry one byte).
DROP INDEX deployments_claims;
DROP INDEX deployments_active;
CREATE INDEX deployments_claims ON deployments (site, started_at, streamed_at) WHERE state = 'open' AND streamed_at IS NULL;
CREATE INDEX deployments_active ON deployments (site, updated_at, streamed_at) WHERE state = 'open' AND streamed_at IS NOT NULL;
