-- The newest position readers may see, the bound below which they see,
-- and the newest committed position (which may lie above the bound).
WITH horizon AS MATERIALIZED (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20 AS below
)
SELECT h.below,
       (SELECT max(global_position) FROM {schema}.events) AS newest,
       (SELECT coalesce(max(global_position), 0) FROM {schema}.events WHERE global_position < h.below) AS head
FROM horizon h
