-- Which migrations the file has: created before anything else, in the
-- migration's own write transaction.
CREATE TABLE IF NOT EXISTS es_schema_migrations (
    version     INTEGER PRIMARY KEY,
    description TEXT    NOT NULL,
    applied_at  INTEGER NOT NULL -- microseconds since the Unix epoch, UTC
) STRICT;
