-- The dashboard's job search. An index ends with the rowid, so (queue, name) keeps
-- a job name's jobs in id order, and (queue, created_at) finds a time range: each
-- page is read straight off an index whatever the table's size. A page of one state
-- needs no index of its own: jobs_queue_state_finished has the unfinished states in
-- id order (their finished_at is null) and the finished ones in finish-time order.
-- (An index on (queue, state) cost a third of the bulk insert rate, and more of the
-- processing rate, as every state change moves its entry.)
CREATE INDEX jobs_queue_name ON jobs (queue, name);
CREATE INDEX jobs_queue_created ON jobs (queue, created_at);

-- Per-queue counts by minute (span_ms 60000, the last 24 hours) and by hour (span_ms
-- 3600000, older minutes rolled up, kept 7 days), written once a minute from memory:
-- the dashboard's charts read a few hundred rows of this, never the jobs table.
--   select queue, datetime(start_at / 1000, 'unixepoch'), enqueued, completed, failed
--   from metrics_history where span_ms = 60000 order by start_at desc limit 10;
CREATE TABLE metrics_history (
    queue       TEXT    NOT NULL,
    span_ms     INTEGER NOT NULL CHECK (span_ms IN (60000, 3600000)),
    start_at    INTEGER NOT NULL,
    enqueued    INTEGER NOT NULL DEFAULT 0,
    completed   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    took_ms     INTEGER NOT NULL DEFAULT 0,   -- processing time of the finished jobs, summed
    took_n      INTEGER NOT NULL DEFAULT 0,   -- finished jobs that had a processing time
    buckets     TEXT    NOT NULL DEFAULT '{}', -- processing-time histogram (history.py): for p95
    PRIMARY KEY (queue, span_ms, start_at)
) WITHOUT ROWID;
