-- The node that claimed an active job: always empty on one appliance, but the
-- statements that change a job are the same on SQLite and PostgreSQL (whose nodes
-- record it), so the column is too. Adding a nullable column rewrites nothing.
ALTER TABLE jobs ADD COLUMN node TEXT;
