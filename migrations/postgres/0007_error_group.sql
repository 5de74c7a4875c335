-- The group of a job's last error (fingerprint.py); failures before this have none
-- and are grouped by their exact message.
ALTER TABLE jobs ADD COLUMN error_group TEXT;
