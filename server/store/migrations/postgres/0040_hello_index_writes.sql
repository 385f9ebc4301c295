-- PostgreSQL twin of ../0040_hello_index_writes.sql: three indexes that every new
-- board's hello wrote for queries that read every row anyway (the sites page's
-- counts) or that a partial index of the deployments outside any batch serves.
DROP INDEX deployments_site;
DROP INDEX boards_site;
DROP INDEX deployments_batch;
CREATE INDEX deployments_unbatched ON deployments (state) WHERE batch_id IS NULL;
