-- How many failed jobs each error group has, per queue and job name, kept by the
-- triggers below in the same transaction as the jobs themselves, so that the failed
-- groups (GET /queues/jobs/failed/groups) are read from a few rows, not counted over
-- every failed job. Only statements that name error_group fire the update trigger:
-- every move into or out of 'failed' sets it (sql/jobs.py), and leasing and
-- completing, which do not, pay nothing. A job inserted already failed (its
-- dependency failed) is counted by its insert (sqlite/adds.py): an insert trigger
-- would cost the bulk path a sixth of its speed. GET /debug/audit and
-- `queueapp check` compare these counts with the jobs.
CREATE TABLE failed_group_counts (
    queue       TEXT NOT NULL,
    error_group TEXT NOT NULL,
    name        TEXT NOT NULL,
    n           INTEGER NOT NULL CHECK (n > 0),
    PRIMARY KEY (queue, error_group, name)
) WITHOUT ROWID;

INSERT INTO failed_group_counts (queue, error_group, name, n)
SELECT queue, error_group, name, count(*) FROM jobs
 WHERE state = 'failed' AND error_group IS NOT NULL GROUP BY queue, error_group, name;

CREATE TRIGGER failed_group_counts_update AFTER UPDATE OF error_group ON jobs
 WHEN (OLD.state = 'failed' AND OLD.error_group IS NOT NULL) OR (NEW.state = 'failed' AND NEW.error_group IS NOT NULL)
BEGIN
    -- the last of its kind removes the row; the others count down (in this order, so
    -- a row counted down to 1 is not then removed)
    DELETE FROM failed_group_counts
     WHERE OLD.state = 'failed' AND queue = OLD.queue AND error_group = OLD.error_group AND name = OLD.name AND n = 1;
    UPDATE failed_group_counts SET n = n - 1
     WHERE OLD.state = 'failed' AND queue = OLD.queue AND error_group = OLD.error_group AND name = OLD.name AND n > 1;
    INSERT INTO failed_group_counts (queue, error_group, name, n)
    SELECT NEW.queue, NEW.error_group, NEW.name, 1 WHERE NEW.state = 'failed' AND NEW.error_group IS NOT NULL
        ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER failed_group_counts_delete AFTER DELETE ON jobs
 WHEN OLD.state = 'failed' AND OLD.error_group IS NOT NULL
BEGIN
    DELETE FROM failed_group_counts
     WHERE queue = OLD.queue AND error_group = OLD.error_group AND name = OLD.name AND n = 1;
    UPDATE failed_group_counts SET n = n - 1
     WHERE queue = OLD.queue AND error_group = OLD.error_group AND name = OLD.name AND n > 1;
END;
