-- A cluster's claims of a queue with group limits count, per key, the active jobs
-- and the starts inside the rate window (queueapp/store/postgres/flow.py).
CREATE INDEX jobs_group_active ON jobs (queue, group_key) WHERE state = 'active' AND group_key IS NOT NULL;
CREATE INDEX jobs_group_started ON jobs (queue, started_at) WHERE group_key IS NOT NULL;
