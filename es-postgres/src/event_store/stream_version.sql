-- The version of a stream's last event ($1 the stream), NULL for none.
SELECT max(stream_version) FROM {schema}.events WHERE stream_id = $1
