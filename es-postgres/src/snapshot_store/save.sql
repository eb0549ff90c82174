-- Keeps the newest snapshot per stream: an older one is ignored.
INSERT INTO {schema}.snapshots AS s (stream_id, aggregate_type, stream_version, schema_version, state, taken_at)
VALUES ($1, $2, $3, $4, $5, 'epoch'::timestamptz + $6::int8 * interval '1 microsecond')
ON CONFLICT (stream_id) DO UPDATE
SET aggregate_type = EXCLUDED.aggregate_type,
    stream_version = EXCLUDED.stream_version,
    schema_version = EXCLUDED.schema_version,
    state = EXCLUDED.state,
    taken_at = EXCLUDED.taken_at
WHERE s.stream_version <= EXCLUDED.stream_version
