-- A job's log: lines its handler or worker appended while it ran, numbered in order;
-- removed with its job (the foreign key cascades).
CREATE TABLE job_logs (
    job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at BIGINT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
