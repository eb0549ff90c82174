-- The stored events among a batch's ids ($1), whole, so that es-core's
-- exact-retry rule can compare their placement and content with the batch.
-- Columns as read_all.sql's event columns: those of read_forward.sql, then
-- the stream (see row.rs).
SELECT global_position, event_id, stream_version, aggregate_type, event_type, schema_version,
       payload, metadata, recorded_at, stream_id
FROM {schema}.events
WHERE event_id = ANY($1::uuid[])
