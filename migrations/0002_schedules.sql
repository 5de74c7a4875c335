-- Recurring schedules: a cron rule (in an IANA time zone) or a fixed interval.
-- The scheduler enqueues a schedule's job and advances next_run_at in one
-- transaction, guarded by the next_run_at it read, so a crash or a double tick can
-- neither lose nor double a run. Each run's job carries the idempotency key
-- "<schedule>@<fire time>", unique per queue (jobs_queue_job_key).
CREATE TABLE schedules (
    queue        TEXT    NOT NULL,
    name         TEXT    NOT NULL,                  -- the schedule's name, unique per queue
    job_name     TEXT    NOT NULL,                  -- name of the jobs it enqueues
    data         TEXT    NOT NULL DEFAULT '{}',     -- JSON object given to each job
    options      TEXT    NOT NULL DEFAULT '{}',     -- JSON job options (priority, attempts, ...)
    cron         TEXT,                              -- 5-field cron rule
    timezone     TEXT    NOT NULL DEFAULT 'UTC',    -- IANA zone the cron rule is read in
    every_ms     INTEGER CHECK (every_ms IS NULL OR every_ms >= 100),
    missed       TEXT    NOT NULL DEFAULT 'skip' CHECK (missed IN ('skip', 'all')),
    overlap      INTEGER NOT NULL DEFAULT 1 CHECK (overlap IN (0, 1)),
    enabled      INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    anchor_at    INTEGER NOT NULL,                  -- every_ms runs fall on anchor + k * every_ms
    next_run_at  INTEGER,                           -- null: computed at the next start
    last_run_at  INTEGER,
    last_job_id  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (queue, name),
    CHECK ((cron IS NULL) <> (every_ms IS NULL))
);

-- The built-in daily cleanup, as a schedule users can see, change or remove: at
-- midnight UTC, remove completed jobs older than 24 hours and failed jobs older
-- than 7 days, in every queue.
INSERT INTO schedules (queue, name, job_name, data, options, cron, timezone, anchor_at,
                       created_at, updated_at)
VALUES ('default', 'cleanup', 'queueapp.clean',
        '{"completedOlderThanMs":86400000,"failedOlderThanMs":604800000}',
        '{"priority":5,"attempts":1}', '0 0 * * *', 'UTC', 0, 0, 0);
