-- The unexpired lease on $1, if any.
SELECT owner, token
FROM {schema}.leases
WHERE name = $1
  AND expires_at > clock_timestamp()
