-- The jobs table churns: every job is inserted and updated two or three times within
-- seconds. Vacuum and statistics by PostgreSQL's defaults (after a fifth of the table
-- changed) lag far behind; the claim's plan needs to know how many jobs wait.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
