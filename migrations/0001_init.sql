-- The jobs table is the source of truth; the dispatcher's heaps are rebuilt from it at start-up.
-- Times are integers: milliseconds since the Unix epoch (UTC). To read them in sqlite3:
--   select id, state, datetime(run_at / 1000, 'unixepoch') from jobs;
-- or use the jobs_readable view below.
CREATE TABLE jobs (
    -- AUTOINCREMENT: an id is never reused, even after its job is cleaned away,
    -- so a late worker answer can never land on a different job.
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    queue           TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    state           TEXT    NOT NULL
                    CHECK (state IN ('waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled')),
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 5),
    data            TEXT    NOT NULL DEFAULT '{}',   -- JSON object
    options         TEXT    NOT NULL DEFAULT '{}',   -- JSON: backoff, timeout, removeOnComplete, removeOnFail
    attempts        INTEGER NOT NULL CHECK (attempts BETWEEN 1 AND 100),
    attempts_made   INTEGER NOT NULL DEFAULT 0 CHECK (attempts_made >= 0),
    progress        TEXT    NOT NULL DEFAULT '0',    -- JSON: a number 0..100 or an object
    result          TEXT,                            -- JSON
    error           TEXT,                            -- message of the last failed attempt
    errors          TEXT    NOT NULL DEFAULT '[]',   -- JSON list, one entry per failed attempt
    job_key         TEXT,                            -- options.jobId, the idempotency key
    created_at      INTEGER NOT NULL,
    run_at          INTEGER NOT NULL,                -- due time; orders jobs within a priority
    started_at      INTEGER,
    finished_at     INTEGER,
    lease_token     TEXT,                            -- set while active; a stale token changes nothing
    lease_expires_at INTEGER,                        -- null for in-process jobs
    heartbeat_at    INTEGER
);

-- options.jobId is unique per queue while the job is kept.
CREATE UNIQUE INDEX jobs_queue_job_key ON jobs (queue, job_key) WHERE job_key IS NOT NULL;
-- Listing by state (failed jobs newest first, cleaning finished jobs by age, paging).
CREATE INDEX jobs_queue_state_finished ON jobs (queue, state, finished_at);
-- Start-up recovery reads only the unfinished jobs.
CREATE INDEX jobs_unfinished ON jobs (state) WHERE state IN ('waiting', 'delayed', 'active');

CREATE TABLE queues (
    name        TEXT    PRIMARY KEY,
    paused      INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    concurrency INTEGER CHECK (concurrency IS NULL OR concurrency >= 1),
    created_at  INTEGER NOT NULL
);

CREATE VIEW jobs_readable AS
SELECT id, queue, name, state, priority, attempts_made || '/' || attempts AS attempts,
       strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') AS created_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', run_at / 1000.0, 'unixepoch') AS run_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', started_at / 1000.0, 'unixepoch') AS started_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', finished_at / 1000.0, 'unixepoch') AS finished_at,
       error
FROM jobs;
