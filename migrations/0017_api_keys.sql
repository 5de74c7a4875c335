-- API keys an admin makes for services: what each may do (roles, comma-separated),
-- in which queues (a JSON list; NULL: every queue), until when, and who made it.
-- Only the SHA-256 of a secret is kept: this file never holds a usable one. A
-- revoked key stays, so that its use is told apart from a guess, and names are
-- unique among the keys not revoked. previous_hash is the secret before a rotation,
-- good until previous_until (a rotation's grace).
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    queues TEXT,
    note TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    secret_hash TEXT NOT NULL,
    previous_hash TEXT,
    previous_until INTEGER,
    rotated_at INTEGER
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;
