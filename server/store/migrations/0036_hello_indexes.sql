-- Two indexes that every hello wrote and no query needs.
-- deployments_secret: a secret now carries its deployment's ID ("ID.KEY"), so the
--   image download finds the row by ID and compares the hash there; the index was
--   keyed by a random hash, so each new deployment wrote a page of its own.
-- board_events_serial (serial, at): board_events_serial_id (serial, id) serves every
--   query by serial (the history is read and capped in id order).
DROP INDEX deployments_secret;
DROP INDEX board_events_serial;
