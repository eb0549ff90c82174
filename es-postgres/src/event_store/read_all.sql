-- Only events of transactions older than the oldest one still in flight:
-- every transaction that may yet commit has xid >= xmin, so all its
-- positions lie above `below`, and above anything returned here.
-- Every row also carries `below` and the newest committed position, so the
-- caller can tell whether committed events are hidden; when nothing is
-- readable, one row of NULL event columns carries them. The event columns
-- are those of read_forward.sql followed by the stream (see row.rs).
WITH horizon AS MATERIALIZED (
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20 AS below,
           (SELECT max(global_position) FROM {schema}.events) AS newest
)
SELECT h.below, h.newest, e.*
FROM horizon h
LEFT JOIN LATERAL (
    SELECT global_position, event_id, stream_version, aggregate_type, event_type, schema_version,
           payload, metadata, recorded_at, stream_id
    FROM {schema}.events
    WHERE global_position > $1
      AND global_position < h.below
    ORDER BY global_position
    LIMIT $2
) e ON true
