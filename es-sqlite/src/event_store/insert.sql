-- One event of an append, inside the append's write transaction, after the
-- stream's version was read and the expectation checked under the same
-- write lock. SQLite assigns the position (the next rowid, AUTOINCREMENT).
-- ?1 event id (16 bytes), ?2 stream, ?3 stream version, ?4 aggregate type,
-- ?5 event type, ?6 schema version, ?7 payload, ?8 metadata (JSON text),
-- ?9 recorded at (microseconds).
INSERT INTO es_events (event_id, stream_id, stream_version, aggregate_type, event_type, schema_version,
                       payload, metadata, recorded_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
