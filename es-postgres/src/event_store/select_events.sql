SELECT global_position, event_id, stream_id, stream_version, aggregate_type, event_type, schema_version,
       payload, metadata, (extract(epoch FROM recorded_at) * 1000000)::int8 AS recorded_at_micros
FROM {schema}.events
