-- PostgreSQL twin of ../0037_open_source_site.sql: the open deployments of a source
-- are counted per site, so the partial index holds both.
DROP INDEX deployments_open_source;
CREATE INDEX deployments_open_source ON deployments (source, site) WHERE state = 'open';
