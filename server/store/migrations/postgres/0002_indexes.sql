-- 0002: indexes the allocation path needs (a board's last deployment; open
-- deployments by activity for the admission limit).
CREATE INDEX deployments_serial ON deployments (serial, id);
CREATE INDEX deployments_state_updated ON deployments (state, updated_at);
