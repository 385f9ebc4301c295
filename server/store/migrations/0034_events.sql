-- 0034: the event stream of servers that share one database (server/events/pgrelay).
-- Only PostgreSQL mode writes it; the SQLite schema has it too so that both dialects
-- hold the same tables. seq is the global sequence number the event streams send
-- (SSE id), assigned by the relay under an advisory lock, so that commit order is seq
-- order; at is the publish time (store.TimeFormat); site the publishing server's
-- --site; data the event's data as JSON text, exactly as the stream sends it; origin
-- names the publishing process and its event number (a batch whose COMMIT's answer
-- was lost is checked by it, never written twice). Old rows are pruned by seq.
CREATE TABLE events (
  seq    INTEGER PRIMARY KEY,
  at     TEXT NOT NULL,
  site   TEXT NOT NULL,
  type   TEXT NOT NULL,
  data   TEXT NOT NULL,
  origin TEXT NOT NULL
);
