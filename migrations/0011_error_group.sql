-- The group of a job's last error (fingerprint.py: its message with ids, numbers,
-- addresses and tokens folded, hashed), so that failures of one cause are counted,
-- listed and acted on together. Jobs that failed before this migration have none
-- and are grouped by their exact message. Adding a nullable column rewrites nothing.
ALTER TABLE jobs ADD COLUMN error_group TEXT;
