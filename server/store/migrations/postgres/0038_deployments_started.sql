-- PostgreSQL twin of ../0038_deployments_started.sql: an index on started_at that
-- every new deployment wrote and no query needs.
DROP INDEX deployments_started;
