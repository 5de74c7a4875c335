-- A job's log: lines its handler or worker appended while it ran (POST
-- /queues/jobs/{id}/log, job.log() in a handler), numbered in order. Removed with its
-- job (the foreign key cascades, whichever statement deletes the job); the newest
-- lines are kept when a job writes more than a job may keep.
CREATE TABLE job_logs (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
