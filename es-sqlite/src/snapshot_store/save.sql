-- Keeps the newest snapshot per stream: an older one is ignored.
-- ?1 stream, ?2 aggregate type, ?3 stream version, ?4 schema version,
-- ?5 state (JSON text), ?6 taken at (microseconds).
INSERT INTO es_snapshots (stream_id, aggregate_type, stream_version, schema_version, state, taken_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (stream_id) DO UPDATE
SET aggregate_type = excluded.aggregate_type,
    stream_version = excluded.stream_version,
    schema_version = excluded.schema_version,
    state = excluded.state,
    taken_at = excluded.taken_at
WHERE es_snapshots.stream_version <= excluded.stream_version
