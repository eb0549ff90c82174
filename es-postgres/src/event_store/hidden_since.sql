-- How long committed events have been hidden from readers: the age of the
-- lowest committed event at or above the bound below which readers see
-- (pg_snapshot_xmin). No row when nothing committed is hidden. The lookup
-- walks the primary key from the bound, so it stays cheap.
WITH horizon AS MATERIALIZED (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20 AS below
)
SELECT coalesce((extract(epoch FROM (clock_timestamp() - e.recorded_at)) * 1000000)::int8, 0) AS hidden_micros
FROM horizon h
JOIN LATERAL (
    SELECT recorded_at
    FROM {schema}.events
    WHERE global_position >= h.below
    ORDER BY global_position
    LIMIT 1
) e ON true
