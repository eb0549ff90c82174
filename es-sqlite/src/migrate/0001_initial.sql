-- Events. `global_position` is the rowid. SQLite lets one connection write
-- at a time, and an append takes the next positions inside its write
-- transaction (BEGIN IMMEDIATE), so positions are handed out in commit
-- order with no holes: a reader that saw position N has seen every
-- position below it. AUTOINCREMENT never hands a position out twice, even
-- after the newest events were deleted (with the deletion switch below).
-- Payload and metadata are JSON text, for SQLite's json functions.
CREATE TABLE es_events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        BLOB    NOT NULL UNIQUE,        -- the UUID's 16 bytes
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    aggregate_type  TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL DEFAULT '{}',
    recorded_at     INTEGER NOT NULL,               -- microseconds since the Unix epoch, UTC
    UNIQUE (stream_id, stream_version)
) STRICT;

-- The deletion switch: one row, off. Events are append only; the triggers
-- below refuse UPDATE and DELETE on es_events unless a transaction turns
-- the switch on first (and off again before it commits, so no other
-- connection ever sees it on):
--   BEGIN IMMEDIATE;
--   UPDATE es_settings SET allow_deletion = 1;
--   DELETE FROM es_events WHERE stream_id = 'customer-42';
--   UPDATE es_settings SET allow_deletion = 0;
--   COMMIT;
-- A missing row counts as off.
CREATE TABLE es_settings (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    allow_deletion INTEGER NOT NULL DEFAULT 0 CHECK (allow_deletion IN (0, 1))
) STRICT;

INSERT INTO es_settings (id, allow_deletion) VALUES (1, 0);

CREATE TRIGGER es_events_append_only_update
BEFORE UPDATE ON es_events
WHEN coalesce((SELECT allow_deletion FROM es_settings WHERE id = 1), 0) = 0
BEGIN
    SELECT RAISE(ABORT, 'es_events is append-only: UPDATE refused (turn es_settings.allow_deletion on in the same transaction to change stored events deliberately)');
END;

CREATE TRIGGER es_events_append_only_delete
BEFORE DELETE ON es_events
WHEN coalesce((SELECT allow_deletion FROM es_settings WHERE id = 1), 0) = 0
BEGIN
    SELECT RAISE(ABORT, 'es_events is append-only: DELETE refused (turn es_settings.allow_deletion on in the same transaction to change stored events deliberately)');
END;

-- Snapshots: the newest per stream.
CREATE TABLE es_snapshots (
    stream_id      TEXT    PRIMARY KEY,
    aggregate_type TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    state          TEXT    NOT NULL,                -- JSON
    taken_at       INTEGER NOT NULL                 -- microseconds since the Unix epoch, UTC
) STRICT;

-- Projection documents, keyed by (projection, id); ids sort bytewise.
CREATE TABLE es_documents (
    projection TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    doc        TEXT    NOT NULL,                    -- JSON
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (projection, id)
) STRICT;

-- Checkpoints, one per subscription name (projections and event handlers):
-- the position of the last event fully handled, and the end of a running
-- replay (NULL: none).
CREATE TABLE es_checkpoints (
    projection   TEXT    PRIMARY KEY,
    position     INTEGER NOT NULL CHECK (position >= 0),
    replay_until INTEGER CHECK (replay_until >= 0),
    updated_at   INTEGER NOT NULL
) STRICT;

-- Subscription leases: each subscription runs on one process at a time.
-- Times are the database clock in microseconds. A row is never deleted (a
-- release only expires it), and every new acquisition takes a token above
-- every token of the table, so tokens strictly increase.
CREATE TABLE es_leases (
    name        TEXT    PRIMARY KEY,
    owner       TEXT    NOT NULL,
    token       INTEGER NOT NULL CHECK (token > 0),
    expires_at  INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL
) STRICT;
