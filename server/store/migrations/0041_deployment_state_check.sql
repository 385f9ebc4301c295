-- 0041: the deployments' state CHECK as a chain of equalities instead of an IN list.
-- SQLite evaluates a CHECK's IN list of more than two values through a temporary
-- b-tree that it builds again every time the statement runs: every new deployment's
-- INSERT (and every state change) opened one, about a sixth of the INSERT's time. The
-- constraint allows exactly the same values. SQLite cannot alter a constraint, so
-- the table's text in sqlite_schema is edited in place, which its documentation
-- gives for changes of CHECK constraints that leave the stored rows as they are
-- (RESET turns the edits off and reloads the schema on this connection; the migrator
-- then raises the schema version, so that every other connection reloads it too).
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql,
  'CHECK (state IN (''open'', ''verified'', ''failed'', ''abandoned''))',
  'CHECK (state = ''open'' OR state = ''verified'' OR state = ''failed'' OR state = ''abandoned'')')
  WHERE type = 'table' AND name = 'deployments';
PRAGMA writable_schema = RESET;
