-- The unexpired lease on ?1, if any.
SELECT owner, token
FROM es_leases
WHERE name = ?1
  AND expires_at > {now}
