-- 0003: batches keep their open and failed deployment counts, so that allocation
-- does not count deployments on every hello.
ALTER TABLE batches ADD COLUMN in_progress BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN failed BIGINT NOT NULL DEFAULT 0;
UPDATE batches SET
  in_progress = (SELECT count(*) FROM deployments d WHERE d.batch_id = batches.id AND d.state = 'open'),
  failed = (SELECT count(*) FROM deployments d WHERE d.batch_id = batches.id AND d.state = 'failed');
