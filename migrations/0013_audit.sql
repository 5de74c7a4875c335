-- The audit trail: every operator change (retry, cancel, delete, promote, pause,
-- resume, clean, schedule and group changes), whoever made it and however (the
-- dashboard, the CLI, the API): who (the token's role), how, from where, what, when.
-- Kept for audit_retention_days (the cleanup job prunes it).
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    via TEXT NOT NULL,
    address TEXT,
    queue TEXT,
    action TEXT NOT NULL,
    target TEXT,
    changed INTEGER,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_at ON audit (at);
