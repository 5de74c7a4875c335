-- A claim of some job names only (a worker's lease with names, a node's handlers)
-- reads the waiting jobs of those names, not every waiting job of the queue.
CREATE INDEX jobs_claim_named ON jobs (queue, name, priority, run_at, id) WHERE state = 'waiting';
