-- Appends one event through a pool connection: the statement is its own
-- transaction, so the event takes the first position of the transaction's
-- range. Otherwise as append.sql, with scalar parameters instead of arrays.
-- $1 stream, $2 expectation kind, $3 exact version, $4.. the event.
WITH current_stream AS (
    SELECT coalesce(max(stream_version), 0) AS version
    FROM {schema}.events
    WHERE stream_id = $1
), checked AS (
    SELECT s.version,
           pg_current_xact_id()::text::bigint << 20 AS first_position,
           CASE $2::int4
               WHEN 0 THEN true
               WHEN 1 THEN s.version = 0
               WHEN 2 THEN s.version > 0
               ELSE s.version = $3::int8
           END AS expectation_holds
    FROM current_stream s
), inserted AS (
    INSERT INTO {schema}.events (global_position, event_id, stream_id, stream_version, aggregate_type,
                                 event_type, schema_version, payload, metadata)
    SELECT c.first_position, $4::uuid, $1, c.version + 1, $5::text, $6::text, $7::int8, $8::jsonb, $9::jsonb
    FROM checked c
    WHERE c.expectation_holds
    RETURNING 1
)
SELECT c.version,
       c.first_position,
       c.expectation_holds,
       true AS fits,
       (SELECT count(*) FROM inserted) AS inserted
FROM checked c
