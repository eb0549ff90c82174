-- Appends one event in one statement, which is its own transaction. SQLite
-- takes the file's write lock as the statement starts, before it reads the
-- stream's version, so nothing can change the stream between the check and
-- the insert. No row comes back when the expectation does not hold (the
-- caller then decides under a write transaction of its own, see append.rs).
-- ?1 event id (16 bytes), ?2 stream, ?3 aggregate type, ?4 event type,
-- ?5 schema version, ?6 payload, ?7 metadata (JSON text), ?8 recorded at
-- (microseconds), ?9 expectation kind (0 any, 1 no stream, 2 stream exists,
-- 3 exact), ?10 the exact version (0: no stream).
-- `max(stream_version)` stands alone in its subquery so SQLite answers it
-- with one probe of the (stream_id, stream_version) index.
WITH head(version) AS (
    SELECT coalesce((SELECT max(stream_version) FROM es_events WHERE stream_id = ?2), 0)
)
INSERT INTO es_events (event_id, stream_id, stream_version, aggregate_type, event_type, schema_version,
                       payload, metadata, recorded_at)
SELECT ?1, ?2, head.version + 1, ?3, ?4, ?5, ?6, ?7, ?8
FROM head
WHERE CASE ?9
          WHEN 0 THEN 1
          WHEN 1 THEN head.version = 0
          WHEN 2 THEN head.version > 0
          ELSE head.version = ?10
      END
RETURNING global_position, stream_version
