-- options.unique: at most one job of a key in the states it names (or finished
-- within its ttlMs). Not a UNIQUE index: finished jobs of a key stay beside a new
-- one; the enqueue looks the key up in the same transaction as its insert.
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
CREATE INDEX jobs_queue_unique_key ON jobs (queue, unique_key) WHERE unique_key IS NOT NULL;
