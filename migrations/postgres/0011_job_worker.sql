-- Who ran a job's latest attempt (see the SQLite migration 0016): the leasing
-- worker's name or address, or "appliance on <node>" for a node's own handlers.
ALTER TABLE jobs ADD COLUMN worker TEXT;
