-- The version of a stream's last event (NULL: no stream). One probe of the
-- (stream_id, stream_version) index.
SELECT max(stream_version) FROM es_events WHERE stream_id = ?1
