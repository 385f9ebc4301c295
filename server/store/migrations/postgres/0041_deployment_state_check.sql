-- PostgreSQL twin of ../0041_deployment_state_check.sql: the same constraint, written
-- the same way (PostgreSQL needs no temporary table for an IN list; the two
-- dialects keep one text).
ALTER TABLE deployments DROP CONSTRAINT deployments_state_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_state_check
  CHECK (state = 'open' OR state = 'verified' OR state = 'failed' OR state = 'abandoned');
