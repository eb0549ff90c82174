-- The oldest prepared (two-phase) transaction: it holds readers back like a
-- running one, but has no backend in pg_stat_activity.
SELECT transaction::text AS xid,
       gid,
       database,
       coalesce((extract(epoch FROM (clock_timestamp() - prepared)) * 1000000)::int8, 0) AS age_micros
FROM pg_prepared_xacts
ORDER BY age(transaction) DESC
LIMIT 1
