-- What each node of a cluster publishes with its heartbeat: its finishes of the last
-- minutes per queue, so that throughput and processing times read the same, for the
-- whole cluster, on every node (queueapp/cluster/figures.py).
ALTER TABLE nodes ADD COLUMN stats JSONB NOT NULL DEFAULT '{}';
