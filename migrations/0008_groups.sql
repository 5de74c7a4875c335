-- options.group: a job's group key (a tenant, an account). Jobs of one key are
-- limited together (at most N active, at most M starts per window) and keys take
-- turns. The key is also in options; this column lets start-up and the checks read
-- it without parsing JSON.
ALTER TABLE jobs ADD COLUMN group_key TEXT;

-- A queue's group policy, when set through the API (PUT /queues/groups/policy): it
-- wins over the config file's [queues.NAME.groups]. NULL: no such limit.
CREATE TABLE group_policies (
    queue        TEXT    PRIMARY KEY,
    concurrency  INTEGER CHECK (concurrency IS NULL OR concurrency >= 1),
    rate_max     INTEGER CHECK (rate_max IS NULL OR rate_max >= 1),
    rate_per_ms  INTEGER CHECK (rate_per_ms IS NULL OR rate_per_ms >= 1),
    updated_at   INTEGER NOT NULL,
    CHECK ((rate_max IS NULL) = (rate_per_ms IS NULL))
) WITHOUT ROWID;

-- One key's own limits (custom = 1) and its pause (paused = 1 until paused_until,
-- or until resumed when paused_until is NULL).
CREATE TABLE group_keys (
    queue        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    custom       INTEGER NOT NULL DEFAULT 0 CHECK (custom IN (0, 1)),
    concurrency  INTEGER CHECK (concurrency IS NULL OR concurrency >= 1),
    rate_max     INTEGER CHECK (rate_max IS NULL OR rate_max >= 1),
    rate_per_ms  INTEGER CHECK (rate_per_ms IS NULL OR rate_per_ms >= 1),
    paused       INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    paused_until INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (queue, key),
    CHECK ((rate_max IS NULL) = (rate_per_ms IS NULL))
) WITHOUT ROWID;
