-- What replaying an aggregate needs: ?1 stream, from version ?2, at most ?3.
-- The position only names a corrupt row.
SELECT stream_version, event_type, schema_version, payload, global_position
FROM es_events
WHERE stream_id = ?1 AND stream_version >= ?2
ORDER BY stream_version
LIMIT ?3
