-- Appends the batches of several streams in one statement, one transaction
-- (group commit): each batch is decided on its own stream's expectation,
-- and a batch whose expectation does not hold is left out while the others
-- are inserted. At most one batch per stream (the caller sees to it), so
-- each batch's versions follow its stream's current version.
-- $1 streams, $2 expectation kinds (0 any, 1 no stream, 2 stream exists,
-- 3 exact), $3 exact versions: one element per batch ("member", 1-based).
-- $4 the member of each event, $5.. the events as parallel arrays, members
-- in order and each member's events in order.
-- Positions: the statement is its own transaction, so the inserted events
-- take its range from xid << 20 on, in order, without holes between them.
-- A batch left out says whether any of its ids is stored (then it may be
-- an exact retry, which the caller tells apart by appending it alone).
-- A concurrent writer that takes a stream's next version first surfaces as
-- a unique violation of the whole statement (nothing is written).
-- Each array is read through a scalar subquery, `(SELECT $n)`, which hides
-- its length from the planner: otherwise every execution gets a custom plan
-- sized to its group (0.3 ms of planning, as long as the execution of a
-- group of four), where this way the server soon keeps one generic plan.
WITH checked AS (
    SELECT m.member,
           m.stream_id,
           s.version,
           CASE m.kind
               WHEN 0 THEN true
               WHEN 1 THEN s.version = 0
               WHEN 2 THEN s.version > 0
               ELSE s.version = m.exact
           END AS expectation_holds
    FROM unnest((SELECT $1::text[]), (SELECT $2::int4[]), (SELECT $3::int8[]))
        WITH ORDINALITY AS m(stream_id, kind, exact, member)
    CROSS JOIN LATERAL (
        SELECT coalesce(max(e.stream_version), 0) AS version
        FROM {schema}.events e
        WHERE e.stream_id = m.stream_id
    ) s
), batch AS (
    SELECT b.*, row_number() OVER (PARTITION BY b.member ORDER BY b.ord) AS n
    FROM unnest((SELECT $4::int8[]), (SELECT $5::uuid[]), (SELECT $6::text[]), (SELECT $7::text[]),
                (SELECT $8::int8[]), (SELECT $9::jsonb[]), (SELECT $10::jsonb[]))
        WITH ORDINALITY AS b(member, event_id, aggregate_type, event_type, schema_version, payload, metadata, ord)
), placed AS (
    SELECT (pg_current_xact_id()::text::bigint << 20) + row_number() OVER (ORDER BY b.ord) - 1 AS global_position,
           b.event_id, c.stream_id, c.version + b.n AS stream_version, b.aggregate_type, b.event_type,
           b.schema_version, b.payload, b.metadata
    FROM batch b
    JOIN checked c ON c.member = b.member
    WHERE c.expectation_holds
), inserted AS (
    INSERT INTO {schema}.events (global_position, event_id, stream_id, stream_version, aggregate_type,
                                 event_type, schema_version, payload, metadata)
    SELECT global_position, event_id, stream_id, stream_version, aggregate_type, event_type,
           schema_version, payload, metadata
    FROM placed
    RETURNING stream_id, global_position
), per_stream AS (
    SELECT stream_id, min(global_position) AS first_position, count(*) AS inserted
    FROM inserted
    GROUP BY stream_id
)
SELECT c.member,
       c.version,
       c.expectation_holds,
       coalesce(p.first_position, 0) AS first_position,
       coalesce(p.inserted, 0) AS inserted,
       CASE WHEN c.expectation_holds THEN false
            ELSE EXISTS (SELECT 1 FROM batch b JOIN {schema}.events e ON e.event_id = b.event_id
                         WHERE b.member = c.member)
       END AS ids_stored
FROM checked c
LEFT JOIN per_stream p ON p.stream_id = c.stream_id
ORDER BY c.member
