-- 0040: indexes that every new board's hello wrote for queries that do not need them.
-- deployments_site (site, id) and boards_site (site, last_seen) served only the
-- sites page's counts per site, which read every row either way (a scan of the
-- index instead of the table); every new deployment wrote the first, and every
-- hello rewrote the second (last_seen changes). deployments_batch (batch_id, state)
-- served only the count of open deployments outside any batch (re-images), which
-- every hello reads; batches are never deleted, so no foreign-key check needs it.
-- That count now reads a partial index that holds only deployments outside any
-- batch, which a hello into a batch does not write.
DROP INDEX deployments_site;
DROP INDEX boards_site;
DROP INDEX deployments_batch;
CREATE INDEX deployments_unbatched ON deployments (state) WHERE batch_id IS NULL;
