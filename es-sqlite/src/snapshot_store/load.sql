-- The snapshot of stream ?1, if any.
SELECT aggregate_type, stream_version, schema_version, state, taken_at
FROM es_snapshots
WHERE stream_id = ?1
