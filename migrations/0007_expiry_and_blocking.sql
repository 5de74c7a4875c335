-- Two new states: expired (options.expireInMs: a job not started by its expiry time
-- ends there) and blocked (options.dependsOn: a job waits there until its
-- dependencies have completed). SQLite cannot alter a CHECK, so the table is rebuilt
-- as 0004 did (copy, drop, rename, indexes, view, the id high-water mark carried
-- over), with the new states and the expire_at column.
DROP VIEW jobs_readable;

CREATE TABLE jobs_next (
    -- AUTOINCREMENT: an id is never reused, even after its job is cleaned away,
    -- so a late worker answer can never land on a different job.
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    queue           TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    state           TEXT    NOT NULL
                    CHECK (state = 'waiting' OR state = 'delayed' OR state = 'active'
                           OR state = 'completed' OR state = 'failed' OR state = 'cancelled'
                           OR state = 'expired' OR state = 'blocked'),
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
    heartbeat_at    INTEGER,
    unique_key      TEXT,                            -- options.unique.key
    expire_at       INTEGER                          -- options.expireInMs from creation: not started after
);

INSERT INTO jobs_next (id, queue, name, state, priority, data, options, attempts, attempts_made,
                       progress, result, error, errors, job_key, created_at, run_at, started_at,
                       finished_at, lease_token, lease_expires_at, heartbeat_at, unique_key)
SELECT id, queue, name, state, priority, data, options, attempts, attempts_made,
       progress, result, error, errors, job_key, created_at, run_at, started_at,
       finished_at, lease_token, lease_expires_at, heartbeat_at, unique_key
FROM jobs;

INSERT INTO sqlite_sequence (name, seq)
SELECT 'jobs_next', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs_next');
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0))
WHERE name = 'jobs_next';

DROP TABLE jobs;
ALTER TABLE jobs_next RENAME TO jobs;

-- options.jobId is unique per queue while the job is kept.
CREATE UNIQUE INDEX jobs_queue_job_key ON jobs (queue, job_key) WHERE job_key IS NOT NULL;
-- Listing by state (failed jobs newest first, cleaning finished jobs by age, paging).
CREATE INDEX jobs_queue_state_finished ON jobs (queue, state, finished_at);
CREATE INDEX jobs_queue_name ON jobs (queue, name);
CREATE INDEX jobs_queue_created ON jobs (queue, created_at);
CREATE INDEX jobs_queue_unique_key ON jobs (queue, unique_key) WHERE unique_key IS NOT NULL;
-- The expiry sweep finds pending jobs past their time without a scan.
CREATE INDEX jobs_expiring ON jobs (expire_at) WHERE expire_at IS NOT NULL AND (state = 'waiting' OR state = 'delayed');

CREATE VIEW jobs_readable AS
SELECT id, queue, name, state, priority, attempts_made || '/' || attempts AS attempts,
       strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') AS created_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', run_at / 1000.0, 'unixepoch') AS run_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', started_at / 1000.0, 'unixepoch') AS started_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', finished_at / 1000.0, 'unixepoch') AS finished_at,
       error
FROM jobs;

-- options.dependsOn: an edge per dependency still unfinished. A dependency's finish
-- removes its edges in the same transaction; a blocked job without edges moves on.
CREATE TABLE job_dependencies (
    depends_on  INTEGER NOT NULL,
    job_id      INTEGER NOT NULL,
    PRIMARY KEY (depends_on, job_id)
) WITHOUT ROWID;
CREATE INDEX job_dependencies_job ON job_dependencies (job_id);
