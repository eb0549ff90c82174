-- Appends a batch to one stream in one statement, all or nothing.
-- $1 stream, $2 expectation kind (0 any, 1 no stream, 2 stream exists,
-- 3 exact), $3 exact version, $4.. the batch as parallel arrays.
-- Positions: the transaction's range starts at xid << 20; a transaction
-- that appends again continues after the highest position it already used.
-- Conflicts with concurrent writers surface as unique violations.
-- $10: send the NOTIFY in this statement (appends inside a caller's
-- transaction); pool appends notify after commit instead (see wakeup.rs).
WITH current_stream AS (
    SELECT coalesce(max(stream_version), 0) AS version
    FROM {schema}.events
    WHERE stream_id = $1
), txn AS (
    SELECT pg_current_xact_id()::text::bigint << 20 AS range_start
), placed AS (
    SELECT s.version,
           t.range_start,
           coalesce((SELECT max(e.global_position) + 1
                     FROM {schema}.events e
                     WHERE e.global_position >= t.range_start
                       AND e.global_position < t.range_start + 1048576),
                    t.range_start) AS first_position
    FROM current_stream s, txn t
), checked AS (
    SELECT p.version,
           p.first_position,
           CASE $2::int4
               WHEN 0 THEN true
               WHEN 1 THEN p.version = 0
               WHEN 2 THEN p.version > 0
               ELSE p.version = $3::int8
           END AS expectation_holds,
           p.first_position - p.range_start + cardinality($4::uuid[]) <= 1048576 AS fits
    FROM placed p
), inserted AS (
    INSERT INTO {schema}.events (global_position, event_id, stream_id, stream_version, aggregate_type,
                                 event_type, schema_version, payload, metadata)
    SELECT c.first_position + b.ord - 1, b.event_id, $1, c.version + b.ord, b.aggregate_type,
           b.event_type, b.schema_version, b.payload, b.metadata
    FROM checked c,
         unnest($4::uuid[], $5::text[], $6::text[], $7::int8[], $8::jsonb[], $9::jsonb[])
             WITH ORDINALITY AS b(event_id, aggregate_type, event_type, schema_version, payload, metadata, ord)
    WHERE c.expectation_holds AND c.fits
    RETURNING 1
), counted AS (
    SELECT count(*) AS n FROM inserted
)
SELECT c.version,
       c.first_position,
       c.expectation_holds,
       c.fits,
       n.n AS inserted,
       CASE WHEN n.n > 0 AND $10::bool THEN pg_notify('{channel}', '') IS NULL END AS notified
FROM checked c, counted n
