-- Only events of transactions older than the oldest one still in flight:
-- every transaction that may yet commit has xid >= xmin, so all its
-- positions lie above anything returned here.
WHERE global_position > $1
  AND global_position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)
ORDER BY global_position
LIMIT $2
