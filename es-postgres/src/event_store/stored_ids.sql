SELECT event_id, stream_id, stream_version, global_position
FROM {schema}.events
WHERE event_id = ANY($1::uuid[])
