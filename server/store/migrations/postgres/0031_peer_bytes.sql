-- 0031: peer_bytes: compressed image bytes the deployment's board says it received
-- from other boards (peer-to-peer, docs/agent.md), the most it reported in a swarm
-- announce. A board that received the whole image from the server and its peers
-- together keeps its name after a failure, as one served whole by the server does.
ALTER TABLE deployments ADD COLUMN peer_bytes BIGINT NOT NULL DEFAULT 0;
