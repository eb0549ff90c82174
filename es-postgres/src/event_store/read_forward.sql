-- One stream's events, oldest first: $1 stream, $2 the first version to
-- return, $3 how many. The stream is known to the caller, so its name is
-- not selected; the columns are those of every event read (see row.rs).
SELECT global_position, event_id, stream_version, aggregate_type, event_type, schema_version,
       payload, metadata, recorded_at
FROM {schema}.events
WHERE stream_id = $1
  AND stream_version >= $2
ORDER BY stream_version
LIMIT $3
