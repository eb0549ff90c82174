SELECT coalesce(max(global_position), 0)
FROM {schema}.events
WHERE global_position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)
