-- The failed groups (GET /queues/jobs/failed/groups) read from this index alone: a
-- queue's failed jobs by group, with their finish times and names, so that counting
-- a million failures never reads the rows. Only failed jobs are in it.
CREATE INDEX jobs_failed_by_group ON jobs (queue, error_group, finished_at, name) WHERE state = 'failed';
