-- What rebuilding an aggregate needs of one stream's events, oldest first:
-- $1 stream, $2 the first version, $3 how many. The columns left out (ids,
-- positions, metadata, timestamps) cost more than the payloads on a long
-- replay. A whole load runs this once with $3 covering the rest of the
-- stream, its rows streamed to the caller (read.rs).
SELECT stream_version, event_type, schema_version, payload
FROM {schema}.events
WHERE stream_id = $1
  AND stream_version >= $2
ORDER BY stream_version
LIMIT $3
