-- The counters read model, in the application's schema (the pool's
-- search_path). `version` is the stream version of the last event
-- counted: an increment is applied only to the row at the version just
-- before it.
CREATE TABLE IF NOT EXISTS counters (
    id       TEXT   PRIMARY KEY,
    value    BIGINT NOT NULL CHECK (value >= 0),
    version  BIGINT NOT NULL CHECK (version > 0),
    position BIGINT NOT NULL CHECK (position > 0)
);
