-- Every state change had to move an entry of this index, which only start-up
-- recovery read (once, and a scan of the table does that fast enough). Leases that
-- expire are rescued by id from the dispatcher's memory, not found by a scan.
DROP INDEX jobs_unfinished;
