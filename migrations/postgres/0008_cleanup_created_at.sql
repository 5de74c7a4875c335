-- The shipped cleanup schedule was inserted with created_at and updated_at 0
-- (1970-01-01): it is created when the database is, which is now, for a new one.
UPDATE schedules SET created_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint,
                     updated_at = CASE WHEN updated_at = 0 THEN (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint
                                       ELSE updated_at END
 WHERE name = 'cleanup' AND created_at = 0;
