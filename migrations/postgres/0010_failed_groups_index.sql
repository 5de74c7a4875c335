-- The failed groups read from this index alone (see the SQLite migration 0014).
CREATE INDEX jobs_failed_by_group ON jobs (queue, error_group, finished_at, name) WHERE state = 'failed';
