-- One stream's events, newest first: $1 stream, $2 the first (highest)
-- version to return, $3 how many. Columns as read_forward.sql.
SELECT global_position, event_id, stream_version, aggregate_type, event_type, schema_version,
       payload, metadata, recorded_at
FROM {schema}.events
WHERE stream_id = $1
  AND stream_version <= $2
ORDER BY stream_version DESC
LIMIT $3
