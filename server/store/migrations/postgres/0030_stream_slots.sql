-- 0030: the two kinds of stream slot (docs/architecture.md, admission), each in a
-- partial index ordered by the time that keeps it: a deployment that has not
-- fetched its image holds one from its hello (started_at), one that has, while it
-- is active (updated_at). Counting the slots then reads only the deployments that
-- hold one, never the open deployments whose slot has lapsed.
CREATE INDEX deployments_claims ON deployments (started_at) WHERE state = 'open' AND streamed_at IS NULL;
CREATE INDEX deployments_active ON deployments (updated_at) WHERE state = 'open' AND streamed_at IS NOT NULL;
