-- PostgreSQL twin of ../0036_hello_indexes.sql: two indexes that every hello wrote
-- and no query needs (the secret carries its deployment's ID; board_events_serial_id
-- serves every query by serial).
DROP INDEX deployments_secret;
DROP INDEX board_events_serial;
