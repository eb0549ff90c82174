SELECT stream_id, aggregate_type, stream_version, schema_version, state,
       (extract(epoch FROM taken_at) * 1000000)::int8 AS taken_at_micros
FROM {schema}.snapshots
WHERE stream_id = $1
