-- 0032: peer-to-peer per image and per batch (docs/agent.md "Peer-to-peer").
-- p2p: 'on', 'off', or 'inherit' (the default): a batch's mode, unless it inherits,
-- decides for its boards; else the image's; else rpi-deployd --p2p.
ALTER TABLE images ADD COLUMN p2p TEXT NOT NULL DEFAULT 'inherit' CHECK (p2p IN ('on', 'off', 'inherit'));
ALTER TABLE batches ADD COLUMN p2p TEXT NOT NULL DEFAULT 'inherit' CHECK (p2p IN ('on', 'off', 'inherit'));
