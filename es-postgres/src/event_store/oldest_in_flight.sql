-- The oldest transaction in the cluster that holds a transaction id and is
-- still running: it holds pg_snapshot_xmin, and so readers, back.
SELECT pid,
       backend_xid::text AS xid,
       datname,
       state,
       left(query, 1000) AS query,
       coalesce((extract(epoch FROM (now() - xact_start)) * 1000000)::int8, 0) AS age_micros
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL
  AND pid <> pg_backend_pid()
ORDER BY age(backend_xid) DESC
LIMIT 1
