-- The counters read model, beside the es tables in the same file.
-- `version` is the stream version of the last event counted: an increment
-- is applied only to the row at the version just before it.
CREATE TABLE IF NOT EXISTS counters (
    id       TEXT    PRIMARY KEY,
    value    INTEGER NOT NULL CHECK (value >= 0),
    version  INTEGER NOT NULL CHECK (version > 0),
    position INTEGER NOT NULL CHECK (position > 0)
) STRICT;
