-- The columns of a recorded event, in the order row.rs reads them.
SELECT global_position, event_id, stream_id, stream_version, aggregate_type, event_type, schema_version,
       payload, metadata, recorded_at
FROM es_events
