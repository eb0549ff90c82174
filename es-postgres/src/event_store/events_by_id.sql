-- The stored events among $1 (an array of event ids), whole, in any order.
-- Uses the unique index on event_id.
SELECT global_position, event_id, stream_id, stream_version, aggregate_type, event_type, schema_version,
       payload, metadata, recorded_at
FROM {schema}.events
WHERE event_id = ANY($1::uuid[])
